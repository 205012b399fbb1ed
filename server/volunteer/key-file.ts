// The Node volunteer's signing key, kept across restarts: WebCrypto keys cannot be written to a file as
// they are, so Node makes its keypair extractable and stores the private JWK in the state directory,
// readable by its owner only (mode 0600). Browsers keep non-extractable keys in IndexedDB instead.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportKeysJwk, importKeysJwk } from '../../shared/security/identity.ts';
import type { LoopStore } from '../../shared/volunteer/store.ts';

const safe = (key: string) => key.replace(/[^A-Za-z0-9_.-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** The file holding the key for one relay (an identity is per relay, as in the browser). */
export const keyFilePath = (dir: string, server: string): string => join(dir, 'keys', `${safe(server)}.jwk.json`);

export function fileKeyStore(dir: string): Required<Pick<LoopStore, 'getKeys' | 'putKeys' | 'keysExtractable'>> {
  return {
    keysExtractable: true,
    async getKeys(server) {
      const path = keyFilePath(dir, server);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      try {
        return await importKeysJwk(JSON.parse(text) as JsonWebKey);
      } catch (e) {
        throw new Error(`the volunteer key in ${path} cannot be read (${(e as Error).message}); delete the file to register as a new volunteer`);
      }
    },
    async putKeys(server, keys) {
      const path = keyFilePath(dir, server);
      await mkdir(join(dir, 'keys'), { recursive: true, mode: 0o700 });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(await exportKeysJwk(keys)), { mode: 0o600 });
      await chmod(tmp, 0o600); // whatever the umask did
      await rename(tmp, path);
    },
  };
}

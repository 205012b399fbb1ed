// Runs shared/security in the page, with the keypair kept in IndexedDB as a tab does.
import { loadOrCreateIdentity, signUpdate, verifyUpdate, type KeyStore } from '../../../shared/security/identity.ts';
import { solvePow } from '../../../shared/security/pow.ts';

function idbStore(): KeyStore {
  const open = () => new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open('tabtrain-security-test', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('keys');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const tx = async <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>) => {
    const db = await open();
    return new Promise<T>((resolve, reject) => {
      const r = f(db.transaction('keys', mode).objectStore('keys'));
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  };
  return {
    get: () => tx<CryptoKeyPair | undefined>('readonly', (s) => s.get('identity') as IDBRequest<CryptoKeyPair | undefined>),
    put: async (k) => { await tx('readwrite', (s) => s.put(k, 'identity')); },
  };
}

const bytes = (a: number[]) => Uint8Array.from(a);

const api = {
  async sign(taskId: string, lease: string, payload: number[]) {
    const me = await loadOrCreateIdentity(idbStore());
    return { id: me.id, publicKey: me.publicKey, signature: await signUpdate(me, taskId, lease, bytes(payload)), extractable: me.keys.privateKey.extractable };
  },
  verify: (publicKey: string, signature: string, taskId: string, lease: string, payload: number[]) =>
    verifyUpdate(publicKey, signature, taskId, lease, bytes(payload)),
  solve: (challenge: string, difficulty: number) => solvePow(challenge, difficulty),
};
(window as unknown as { security: typeof api; securityReady: boolean }).security = api;
(window as unknown as { securityReady: boolean }).securityReady = true;

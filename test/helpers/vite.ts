// A Vite dev server started programmatically on a random loopback port, serving the repository root,
// so test and bench pages (plain .html under test/ or bench/) can import shared/ TypeScript directly.
import { createServer, type ViteDevServer } from 'vite';
import { resolve } from 'node:path';

export type PageServer = { url: string; close(): Promise<void> };

const repoRoot = resolve(import.meta.dirname, '../..');

/**
 * prebundle: bare npm imports the pages use (e.g. '@tensorflow/tfjs'); they are bundled before the
 * first request so no page is reloaded by Vite discovering a dependency mid-run.
 */
export async function startPageServer(opts: { prebundle?: string[] } = {}): Promise<PageServer> {
  const server: ViteDevServer = await createServer({
    configFile: false,
    root: repoRoot,
    logLevel: 'error',
    clearScreen: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    optimizeDeps: { noDiscovery: true, include: opts.prebundle ?? [], entries: [] },
    worker: { format: 'es' },
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') {
    await server.close();
    throw new Error('Vite page server did not bind a TCP port on 127.0.0.1');
  }
  return { url: `http://127.0.0.1:${address.port}`, close: () => server.close() };
}

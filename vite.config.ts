import { defineConfig } from 'vite';
import { resolve } from 'node:path';

// The relay serves dist/ (see server/http/static.ts); every page is one entry.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        volunteer: resolve(import.meta.dirname, 'index.html'),
        // Researchers' and operators' pages (server/ops serves their API).
        dashboard: resolve(import.meta.dirname, 'dashboard.html'),
        submit: resolve(import.meta.dirname, 'submit.html'),
        job: resolve(import.meta.dirname, 'job.html'),
      },
    },
  },
  worker: { format: 'es' },
});

import { defineConfig } from 'vitest/config';

// Two cores in CI: files run in two forks; browser and training tests are long by nature.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});

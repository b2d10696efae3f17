import { defineConfig } from 'vitest/config';

// One embedded stack (Postgres, Temporal dev server, LiteLLM in front of a scripted model) per run,
// started by the global setup; each test file starts its own worker and web process against it.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
  },
});

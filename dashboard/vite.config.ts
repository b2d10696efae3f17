// `remix vite:build` writes dashboard/build/{client,server}; the web process serves both (mount.ts).
// `npm run dev` runs Vite's dev server here with live reload, proxying /v1 to a running web process.
import { fileURLToPath } from 'node:url';
import { vitePlugin as remix } from '@remix-run/dev';
import { defineConfig } from 'vite';

const apiUrl = process.env.BERTH_API_URL ?? `http://127.0.0.1:${process.env.PORT ?? '3000'}`;

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [
    remix({
      appDirectory: 'app',
      buildDirectory: 'build',
      future: {
        v3_fetcherPersist: true,
        v3_relativeSplatPath: true,
        v3_throwAbortReason: true,
        v3_lazyRouteDiscovery: true,
        v3_singleFetch: true,
      },
    }),
  ],
  server: { port: 5173, proxy: { '/v1': apiUrl } },
  build: { chunkSizeWarningLimit: 1024 },
});

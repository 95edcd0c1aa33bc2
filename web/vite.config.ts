// Built to static files (web/dist) that the api serves at `/`; nothing is fetched at run time.
// `npm run dev` serves the sources with the API of a local `vtp up` proxied under /v1.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "dist",
    target: "es2022",
    sourcemap: false,
    // One small bundle: React and the app together stay far below the warning.
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: { "/v1": { target: process.env.VTP_API_URL ?? "http://127.0.0.1:8000", changeOrigin: false } },
  },
});

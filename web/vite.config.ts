/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to the edge `make run` started, so the app stays same-origin
// (the edge keeps CORS off); CONVEYOR_API_ORIGIN points it elsewhere.
const apiOrigin = process.env.CONVEYOR_API_ORIGIN ?? "http://127.0.0.1:18000";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": apiOrigin } },
  build: { outDir: "dist", sourcemap: false },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    css: false,
  },
});

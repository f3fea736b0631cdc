// Vite config of the Shoal dashboard. `npm run build` writes the production build to
// ../headnode/web/static/ (served by the head node as static files) together with
// source-hash.txt, a digest of the sources that lets a Python test spot a stale build.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, relative, sep, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const root = dirname(fileURLToPath(import.meta.url));
const outDir = join(root, '..', 'headnode', 'web', 'static');

function walk(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...walk(full));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

// sha256 over, for each file in sorted order of its POSIX path relative to web/, the bytes
// `path + "\n" + file bytes + "\n"`; the files: everything under src/ plus index.html,
// package.json, package-lock.json and vite.config.js. Written as the hex digest and "\n".
export function sourceHash() {
  const files = walk(join(root, 'src')).concat(
    ['index.html', 'package.json', 'package-lock.json', 'vite.config.js'].map((f) => join(root, f)),
  );
  const paths = files.map((f) => relative(root, f).split(sep).join('/'));
  paths.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // code-unit order (== Python's sorted() for ASCII)
  const hash = createHash('sha256');
  for (const path of paths) {
    hash.update(path + '\n');
    hash.update(readFileSync(join(root, path)));
    hash.update('\n');
  }
  return hash.digest('hex');
}

function sourceHashPlugin() {
  return {
    name: 'shoal-source-hash',
    apply: 'build',
    closeBundle() {
      if (existsSync(outDir)) writeFileSync(join(outDir, 'source-hash.txt'), sourceHash() + '\n');
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [preact({ prefreshEnabled: true }), sourceHashPlugin()],
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    reportCompressedSize: true,
    chunkSizeWarningLimit: 300,
  },
  server: {
    // `npm run mock` (dev/mock.js) serves fake data on :8089; point SHOAL_API at a real
    // head node's dashboard address to develop against it instead.
    proxy: {
      '/api': { target: process.env.SHOAL_API || 'http://127.0.0.1:8089', changeOrigin: true },
    },
  },
});

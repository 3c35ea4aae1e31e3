// Builds the SDK: type-checks src/*.ts and writes the declarations (tsc), then bundles
// src/index.ts into one ES module (esbuild). The bundle goes to dist/directo.js (the npm
// package) and to sdk/directo.js, the committed copy the server serves at /sdk/directo.js,
// so `cargo build` works without npm. Run `npm run build` after editing src/ and commit
// sdk/directo.js with the change; the unit tests fail when the committed copy is stale.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');

try {
  execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
} catch {
  console.error('build: the TypeScript check failed (errors above)');
  process.exit(1);
}
await build({
  entryPoints: [join(here, 'src', 'index.ts')],
  outfile: join(here, 'dist', 'directo.js'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'neutral',
  legalComments: 'none',
  banner: { js: '// Directo browser SDK (directo-client). Built from web/src by web/build.mjs; do not edit.' },
  logLevel: 'warning',
});
await mkdir(join(here, 'sdk'), { recursive: true });
if (!process.argv.includes('--check')) {
  await copyFile(join(here, 'dist', 'directo.js'), join(here, 'sdk', 'directo.js'));
}

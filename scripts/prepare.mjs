// `npm prepare`: build dist/ when TypeScript is here to build it.
//
// npm runs `prepare` in a clone after `npm install` / `npm ci` (devDependencies
// present: build), for a git dependency (npm installs the devDependencies in
// its clone first: build), before `npm pack` / `npm publish`, and in the folder
// that `npm install ../huey-ts` links to, where the devDependencies may not be
// installed. There a dist/ built earlier is used as it is, and without one we
// stop saying what to run, rather than with `tsc: not found`. The published
// tarball carries dist/ and no tsconfig, so nothing is built from it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));

function hasTypeScript() {
  try {
    require.resolve('typescript/package.json', { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

// A source checkout (not an unpacked tarball) whose devDependencies are installed.
if (existsSync(`${root}tsconfig.build.json`) && hasTypeScript()) {
  const npm = process.env.npm_execpath;
  const build = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build'], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  process.exit(build.status ?? 1);
} else if (existsSync(`${root}dist/index.js`)) {
  console.error('huey-ts: TypeScript is not installed here; using the dist/ already built.');
} else {
  const dir = root;
  console.error(
    `huey-ts: dist/ is not built and TypeScript is not installed in ${dir}.\n` +
      `Build it there first:  (cd ${dir} && npm install)\n` +
      'or install a tarball instead:  npm pack  (then npm install ./huey-ts-<version>.tgz)',
  );
  process.exit(1);
}

#!/usr/bin/env node
// Regenerates the committed FlatBuffers code from schemas/envelope.fbs with the
// system flatc (Debian's flatbuffers-compiler). With --check it generates into a
// temporary folder and fails when the committed files differ, so the wire format
// and the code that reads it cannot drift apart.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schema = join(root, 'schemas', 'envelope.fbs');
const targets = [
  { dir: join(root, 'src', 'generated'), args: ['--ts', '--ts-flat-files'] },
  {
    dir: join(root, 'native', 'generated'),
    args: ['--cpp', '--cpp-std', 'c++17', '--scoped-enums'],
  },
];
const check = process.argv.includes('--check');

function flatc(args, outDir) {
  try {
    execFileSync('flatc', [...args, '-o', outDir, schema], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch (err) {
    if (err.code === 'ENOENT') {
      console.error('codegen: flatc not found; install Debian package flatbuffers-compiler');
      process.exit(2);
    }
    throw err;
  }
}

let stale = 0;
for (const { dir, args } of targets) {
  const out = check ? mkdtempSync(join(tmpdir(), 'disco-codegen-')) : dir;
  flatc(args, out);
  if (!check) continue;
  for (const name of readdirSync(out)) {
    const committed = join(dir, name);
    const fresh = readFileSync(join(out, name), 'utf8');
    if (!existsSync(committed) || readFileSync(committed, 'utf8') !== fresh) {
      console.error(`codegen: ${committed} differs from what flatc generates; run npm run codegen`);
      stale++;
    }
  }
  rmSync(out, { recursive: true, force: true });
}
if (check && stale === 0) console.log('codegen: generated code matches schemas/envelope.fbs');
process.exit(stale === 0 ? 0 : 1);

// The shared half of the esbuild plugins that patch undici's code inside the child bundle: each
// patch is a textual replacement against the locked undici version, and if undici's code moves
// the build fails here, naming the plugin to update, instead of silently losing the patch.
import { readFile } from 'node:fs/promises';

/**
 * An esbuild plugin that loads undici's `lib/web/fetch/<file>` with `patches` ([from, to]
 * pairs, each `from` found exactly once) applied and `append` added at the end.
 */
export function undiciPatchPlugin(name, file, patches, append = '') {
  const filter = new RegExp(`undici[\\\\/]lib[\\\\/]web[\\\\/]fetch[\\\\/]${file.replace('.', '\\.')}$`);
  return {
    name,
    setup(build) {
      build.onLoad({ filter }, async (args) => {
        let code = await readFile(args.path, 'utf8');
        for (const [from, to] of patches) {
          if (code.split(from).length !== 2) {
            throw new Error(`${name}: expected exactly one ${JSON.stringify(from.trim().slice(0, 80))} in ${args.path}; undici changed, update scripts/${name.replace(/^undici-/, '')}-plugin.mjs`);
          }
          code = code.replace(from, to);
        }
        return { contents: code + append, loader: 'js' };
      });
    },
  };
}

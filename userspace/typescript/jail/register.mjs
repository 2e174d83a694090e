// Preloaded in every agent jail (the kernel puts `--import=<this file>` in NODE_OPTIONS) so
// that `import 'agentos'` resolves to the SDK the kernel wrote beside this file, in
// `node_modules/agentos`, whatever directory the agent's own script is in. An ES-module bare
// specifier does not honour NODE_PATH; a resolve hook is how Node lets a runtime provide one.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);

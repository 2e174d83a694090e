// The resolve hook registered by register.mjs: `agentos` and `agentos/<subpath>` resolve as if
// imported from this directory, i.e. to `./node_modules/agentos` (its package.json `exports`
// apply as usual). The kernel's copy wins over one installed beside the agent, as the Python
// SDK on PYTHONPATH does: it is the one that speaks this kernel's ABI. Everything else
// resolves as Node would without the hook.
const HERE = new URL('./index.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'agentos' || specifier.startsWith('agentos/')) {
    return next(specifier, { ...context, parentURL: HERE });
  }
  return next(specifier, context);
}

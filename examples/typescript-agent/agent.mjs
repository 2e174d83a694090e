// A Node agent under agentos that does its work through the kernel: it reads its workspace,
// runs a tool with `exec`, keeps notes in working and episodic memory with several calls in
// flight at once, asks the policy before acting, and shuts down cleanly on SIGTERM.
//
//     bash examples/typescript-agent/run.sh
//
// The kernel preloads its own read-only copy of the `agentos` package in every agent's jail,
// so `import ... from 'agentos'` works with nothing installed (`npm pack userspace/typescript`
// makes the same package for editors and type checking).
import { connect, NotFound, PermissionDenied, SDK_NAME } from 'agentos';

const td = new TextDecoder();
const say = (line) => process.stdout.write(`${line}\n`);

async function exists(client, path) {
  try {
    await client.stat(path);
    return true;
  } catch (e) {
    if (e instanceof NotFound) return false;
    throw e;
  }
}

async function main() {
  const client = await connect();
  say(`agent ${client.agentId} connected (sdk ${SDK_NAME})`);
  client.onSignal('SIGTERM', async (sig, reason) => {
    say(`got ${sig} (${reason}): finishing up`);
    await client.exit(0);
  });

  // The workspace: a host directory the kernel serves, read-only for this agent.
  const names = (await client.list('/workspace')).map((e) => e.name).sort();
  say(`workspace: ${names.join(', ')}`);
  const [header, ...rows] = (await client.readText('/workspace/tasks.csv')).trim().split('\n');
  const cols = header.split(',');
  const tasks = rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i], v])));
  const open = tasks.filter((t) => t.done === 'no');
  say(`tasks: ${tasks.length}, ${open.length} open`);

  // A tool in a jail of its own, with the workspace mounted read-only.
  const wc = await client.exec(['/usr/bin/wc', '-l', '/workspace/tasks.csv']);
  say(`exec wc -l: ${td.decode(wc.stdout).split(' ')[0]} lines (status ${wc.status})`);

  // One note per open task, all written at once: the calls are in flight together on the one
  // connection and each answer finds its call by request id.
  await Promise.all(open.map((t) => client.write(`/mem/working/notes/${t.id}.md`, `# ${t.title}\n`)));
  say(`notes: ${(await client.list('/mem/working/notes')).length} written in parallel`);

  // Episodic memory outlives the run.
  const earlier = (await exists(client, '/mem/episodic/runs')) ? await client.list('/mem/episodic/runs') : [];
  const run = earlier.length + 1;
  await client.write(`/mem/episodic/runs/${String(run).padStart(4, '0')}.md`, `run ${run}: ${open.length} open tasks\n`);
  say(`episodic: ${earlier.length} earlier runs remembered; this is run ${run}`);

  // Ask the policy before acting: a dry run is never a violation.
  const d = await client.checkPolicy('file_write', '/workspace/tasks.csv');
  say(`policy: writing the workspace is ${d.allowed ? 'allowed' : 'denied'} (${d.rule || 'default deny'})`);

  say('done');
  await client.announceExit(0);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof PermissionDenied ? 'denied' : 'failed'}: ${e.message}\n`);
  process.exit(e instanceof PermissionDenied ? 3 : 1);
});

// The official TypeScript SDK client, the way a desktop client meets the host: spawn it over stdio,
// list the tools straight after connect, and call one at once. Prints one JSON object on stdout.
//
// node ts_client.mjs TOOL ARGS_JSON -- COMMAND [ARG ...]
// (run from a directory whose node_modules holds @modelcontextprotocol/sdk; the test installs it)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const argv = process.argv.slice(2);
const split = argv.indexOf("--");
if (split < 2 || split === argv.length - 1) {
  console.error("usage: node ts_client.mjs TOOL ARGS_JSON -- COMMAND [ARG ...]");
  process.exit(2);
}
const [tool, args] = argv.slice(0, 2);
const [command, ...commandArgs] = argv.slice(split + 1);

const transport = new StdioClientTransport({ command, args: commandArgs, env: process.env, stderr: "inherit" });
const client = new Client({ name: "sophia-ts-e2e", version: "0.0.0" });
await client.connect(transport);
const tools = [];
let cursor;
do {
  const page = await client.listTools(cursor ? { cursor } : {});
  tools.push(...page.tools.map((t) => t.name));
  cursor = page.nextCursor;
} while (cursor);
const call = await client.callTool({ name: tool, arguments: JSON.parse(args) });
console.log(JSON.stringify({ protocol: transport.protocolVersion ?? null, tools, call }));
await client.close();

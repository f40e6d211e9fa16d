// The fan-out benchmark's Node and Bun servers: the baselines a user would pick instead.
//
// One script, four servers (--mode), each with the same feed as the Python servers of
// bench_fanout.py: every tick it hands over the updates due at the set rate, each body a
// real quote body (the templates the conductor writes) stamped with the hand-over time T
// (CLOCK_MONOTONIC ns, corrected by the offset the conductor measured) and the product's
// update number N.
//
//   node fanout_server.cjs --mode ws          ws, ws.send() per subscriber (idiomatic)
//   node fanout_server.cjs --mode ws-corked   ws, each frame built once, each subscriber's
//                                             socket corked for the batch
//   bun fanout_server.cjs --mode publish      Bun.serve, server.publish() per update
//   bun fanout_server.cjs --mode send         Bun.serve, ws.send() per subscriber
//
// It speaks JSON lines on stdin/stdout like benchlib.Child: a hello with the port, then
// {"cmd":"status"|"clock"|"run"|"exit"}. Node's `ws` comes from --modules (the npm cache
// the benchmark's set-up fills); nothing of tickwire depends on this file.
"use strict";

const path = require("path");
const fs = require("fs");
const readline = require("readline");

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const mode = args.mode;
const tickS = Number(args["tick-ms"] || 10) / 1000;
const templates = JSON.parse(fs.readFileSync(args.templates, "utf8"));
const codes = templates.codes;
const bodies = templates.bodies; // per product, bodies cut open before `"T":`

const subs = new Map(); // code -> Set of connections (send, ws, ws-corked)
const counts = new Map(); // code -> subscribers (publish)
let server = null;

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function keyCodes(text) {
  try {
    const message = JSON.parse(text);
    if (message && typeof message.Key === "string")
      return message.Key.split(",").map((c) => c.trim()).filter((c) => c);
  } catch (e) {}
  return [];
}

function subscribe(conn, mine, text, onNew) {
  for (const code of keyCodes(text)) {
    if (mine.has(code)) continue;
    mine.add(code);
    counts.set(code, (counts.get(code) || 0) + 1);
    if (!subs.has(code)) subs.set(code, new Set());
    subs.get(code).add(conn);
    if (onNew) onNew(code);
  }
}

function unsubscribeAll(conn, mine) {
  for (const code of mine) {
    counts.set(code, counts.get(code) - 1);
    subs.get(code).delete(conn);
  }
  mine.clear();
}

function frameHeader(size) {
  if (size < 126) return Buffer.from([0x81, size]);
  if (size < 65536) return Buffer.from([0x81, 126, size >> 8, size & 0xff]);
  const h = Buffer.alloc(10);
  h[0] = 0x81;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(size), 2);
  return h;
}

// the servers -------------------------------------------------------------------------------

async function startNode() {
  const { WebSocketServer } = require(path.join(args.modules, "ws"));
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, backlog: 1024,
                                    perMessageDeflate: false, clientTracking: false });
  await new Promise((resolve) => wss.on("listening", resolve));
  wss.on("connection", (ws) => {
    const mine = new Set();
    ws.on("message", (data) => subscribe(ws, mine, data.toString()));
    ws.on("close", () => unsubscribeAll(ws, mine));
    ws.on("error", () => {});
  });
  return wss.address().port;
}

function publishWsSend(batch) {
  for (const [code, text] of batch) {
    const set = subs.get(code);
    if (set) for (const ws of set) ws.send(text);
  }
}

function publishWsCorked(batch) {
  const corked = [];
  for (const [code, text] of batch) {
    const set = subs.get(code);
    if (!set || !set.size) continue;
    const payload = Buffer.from(text);
    const frame = Buffer.concat([frameHeader(payload.length), payload]); // built once
    for (const ws of set) {
      const socket = ws._socket;
      if (!socket.writableCorked) {
        socket.cork();
        corked.push(socket);
      }
      socket.write(frame);
    }
  }
  for (const socket of corked) socket.uncork(); // one writev per socket per batch
}

async function startBun() {
  const sendMode = mode === "send";
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      if (srv.upgrade(req, { data: { mine: new Set() } })) return undefined;
      return new Response("WebSocket only", { status: 400 });
    },
    websocket: {
      perMessageDeflate: false,
      idleTimeout: 120,
      maxPayloadLength: 64 * 1024,
      backpressureLimit: 64 * 1024 * 1024,
      closeOnBackpressureLimit: false,
      message(ws, message) {
        subscribe(ws, ws.data.mine, String(message), sendMode ? null : (code) => ws.subscribe(code));
      },
      close(ws) {
        unsubscribeAll(ws, ws.data.mine);
      },
    },
  });
  return server.port;
}

function publishBunPublish(batch) {
  for (const [code, text] of batch) server.publish(code, text);
}

function publishBunSend(batch) {
  for (const [code, text] of batch) {
    const set = subs.get(code);
    if (set) for (const ws of set) ws.send(text);
  }
}

// the feed ----------------------------------------------------------------------------------

const seqs = new Array(codes.length).fill(0);
let nextProduct = 0;
const nowS = () => performance.now() / 1000;
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function run(publish, rate, seconds, offset, maxLag) {
  // The same rules as bench_fanout.py's Feed: each tick hands over what is due at `rate`,
  // at most `maxLag` seconds of it (older updates are skipped and counted), until `seconds`.
  const count = codes.length;
  const variants = bodies[0].length;
  const maxBatch = Math.max(1, Math.round(rate * maxLag));
  let sent = 0, deliveries = 0, batches = 0, largest = 0, skipped = 0, lagMax = 0;
  const cpu0 = cpuSeconds();
  const start = nowS();
  const end = start + seconds;
  let nextTick = start;
  for (;;) {
    nextTick += tickS;
    const delay = nextTick - nowS();
    await sleep(delay > 0 ? delay : 0);
    const now = nowS();
    if (now >= end) break;
    lagMax = Math.max(lagMax, now - nextTick);
    let due = Math.floor((now - start) * rate) + 1;
    if (due <= sent) continue;
    if (due - sent > maxBatch) {
      skipped += due - sent - maxBatch;
      sent = due - maxBatch;
    }
    const stamp = (process.hrtime.bigint() + offset).toString();
    const batch = [];
    for (let k = sent; k < due; k++) {
      const p = nextProduct;
      nextProduct = (p + 1) % count;
      const seq = (seqs[p] += 1);
      const code = codes[p];
      batch.push([code, bodies[p][seq % variants] + stamp + ',"N":' + seq + "}}"]);
      deliveries += counts.get(code) || 0;
    }
    publish(batch);
    batches += 1;
    largest = Math.max(largest, batch.length);
    sent = due;
  }
  const elapsed = nowS() - start;
  return { updates: sent - skipped, deliveries, elapsed, skipped, lag_max: lagMax,
           kept_pace: skipped === 0 && lagMax <= 0.05,
           server_cpu: (100 * (cpuSeconds() - cpu0)) / elapsed, batches, largest_batch: largest };
}

async function main() {
  let port, publish;
  if (mode === "ws") [port, publish] = [await startNode(), publishWsSend];
  else if (mode === "ws-corked") [port, publish] = [await startNode(), publishWsCorked];
  else if (mode === "publish") [port, publish] = [await startBun(), publishBunPublish];
  else if (mode === "send") [port, publish] = [await startBun(), publishBunSend];
  else throw new Error("unknown --mode " + mode);
  const sample = bodies[0][0].length + '1763000000000000000,"N":1}}'.length;
  reply({ port, pid: process.pid, message_bytes: sample,
          loop: typeof Bun !== "undefined" ? "bun " + Bun.version : "node " + process.version });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const message = JSON.parse(line);
    if (message.cmd === "exit") break;
    if (message.cmd === "status") {
      let total = 0;
      for (const n of counts.values()) total += n;
      reply({ subscriptions: total });
    } else if (message.cmd === "clock") {
      reply({ now: process.hrtime.bigint().toString() });
    } else if (message.cmd === "run") {
      reply(await run(publish, message.rate, message.seconds, BigInt(message.offset || 0),
                      message.max_lag));
    } else {
      reply({ error: "unknown command " + line });
    }
  }
  process.exit(0);
}

main().catch((err) => {
  reply({ error: String(err && err.stack || err) });
  process.exit(1);
});

// Socket.IO 4 + Redis adapter baseline for the Souk fan-out benchmark.
//
// Same method as the bare websockets baseline: the publisher PUBLISHes on the Redis channel
// `<prefix><channel>`; the first local subscriber of a channel makes this process subscribe to
// it; every Redis message gets an in-process gapless offset and is emitted to the room of local
// sockets as the event "pub" with {channel, offset, data}. The Redis adapter is installed as in
// a multi-node deployment (room broadcasts from other nodes arrive through it); this baseline
// emits with io.local so a publication is not relayed twice when several nodes subscribe.
//
// Client events: "subscribe" {channel} with an ack -> {epoch, offset}; "ping" with an ack.
//
//   node server.js --port 18800 --redis-url redis://127.0.0.1:6379/0
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const port = Number(arg("port", "18800"));
const redisUrl = arg("redis-url", "redis://127.0.0.1:6379/0");
const prefix = arg("prefix", "bench:fanout:");
const epoch = Math.random().toString(16).slice(2, 10);

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  const feed = pubClient.duplicate(); // our own publications channel
  await Promise.all([pubClient.connect(), subClient.connect(), feed.connect()]);

  const http = createServer();
  const io = new Server(http, {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    adapter: createAdapter(pubClient, subClient, { key: `${prefix}socket.io` }),
  });

  const offsets = new Map();
  const members = new Map();

  async function join(socket, channel) {
    socket.join(channel);
    const n = (members.get(channel) || 0) + 1;
    members.set(channel, n);
    if (n === 1) {
      if (!offsets.has(channel)) offsets.set(channel, 0);
      await feed.subscribe(prefix + channel, (message) => {
        const offset = offsets.get(channel) + 1;
        offsets.set(channel, offset);
        io.local.to(channel).emit("pub", { channel, offset, data: JSON.parse(message) });
      });
    }
    return offsets.get(channel);
  }

  async function leave(channel) {
    const n = (members.get(channel) || 1) - 1;
    if (n > 0) {
      members.set(channel, n);
      return;
    }
    members.delete(channel);
    await feed.unsubscribe(prefix + channel);
  }

  io.on("connection", (socket) => {
    const joined = new Set();
    socket.on("subscribe", async (msg, ack) => {
      const channel = msg && msg.channel;
      if (typeof channel !== "string" || typeof ack !== "function") return;
      const offset = await join(socket, channel);
      joined.add(channel);
      ack({ epoch, offset, recovered: false, publications: [] });
    });
    socket.on("ping", (ack) => typeof ack === "function" && ack({}));
    socket.on("disconnect", () => {
      for (const channel of joined) leave(channel);
    });
  });

  http.listen(port, "127.0.0.1", 4096);
  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit(), feed.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

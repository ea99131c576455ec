// A JsSIP user agent for kemi's end-to-end tests: registers over the WebSocket URL given and
// reports what happens as JSON lines on stdout ({"event": "registered"}, {"event": "message",
// "body": ...}). It answers MESSAGEs 200 (JsSIP's default) and exits after `seconds`.
//   node client.js wss://127.0.0.1:5443 sip:jsuser@127.0.0.1 20
// The CA of a self-signed test server comes from NODE_EXTRA_CA_CERTS.
"use strict";
const WebSocket = require("ws");
global.WebSocket = WebSocket; // JsSIP's WebSocketInterface uses the browser's global
const JsSIP = require("jssip");

const [url, uri, seconds] = process.argv.slice(2);
const say = (event, extra) => process.stdout.write(JSON.stringify({ event, ...extra }) + "\n");

const socket = new JsSIP.WebSocketInterface(url);
const ua = new JsSIP.UA({
  sockets: [socket],
  uri,
  register: true,
  register_expires: 300,
  session_timers: false,
  connection_recovery_min_interval: 1,
  connection_recovery_max_interval: 2,
});
ua.on("connected", () => say("connected"));
ua.on("disconnected", () => say("disconnected"));
ua.on("registered", () => say("registered"));
ua.on("registrationFailed", (e) => say("registrationFailed", { cause: String(e.cause) }));
ua.on("newMessage", (e) => {
  if (e.originator === "remote") {
    say("message", { body: e.request.body, from: e.request.from.uri.toString() });
  }
});
ua.start();
setTimeout(() => {
  say("done");
  ua.stop();
  setTimeout(() => process.exit(0), 500);
}, Number(seconds || 20) * 1000);

/*!
 * websockets.ts 0.1.0 — a WebSocket client and server for Node.js in one file, with the same
 * small API over the browser's native WebSocket. npm: websockets.ts; JSR: @websockets-ts/websockets.
 *
 * SPDX-License-Identifier: MIT
 *
 * Copyright (c) 2026 the websockets.ts authors
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy
 * of this software and associated documentation files (the "Software"), to deal
 * in the Software without restriction, including without limitation the rights
 * to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 * copies of the Software, and to permit persons to whom the Software is
 * furnished to do so, subject to the following conditions:
 *
 * The above copyright notice and this permission notice shall be included in all
 * copies or substantial portions of the Software.
 *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 * IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 * FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 * AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 * LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 * OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 * SOFTWARE.
 */
const Opcode = {
  CONTINUATION: 0,
  TEXT: 1,
  BINARY: 2,
  CLOSE: 8,
  PING: 9,
  PONG: 10
};
const CloseCode = {
  NORMAL_CLOSURE: 1e3,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS_RECEIVED: 1005,
  ABNORMAL_CLOSURE: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
  TLS_HANDSHAKE: 1015
};
const CLOSE_CODE_DESCRIPTIONS = {
  1e3: "normal closure",
  1001: "going away",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "no status received",
  1006: "abnormal closure",
  1007: "invalid payload data",
  1008: "policy violation",
  1009: "message too big",
  1010: "mandatory extension",
  1011: "internal error",
  1012: "service restart",
  1013: "try again later",
  1014: "bad gateway",
  1015: "TLS handshake failure"
};
function describeCloseCode(code) {
  const description = CLOSE_CODE_DESCRIPTIONS[code];
  if (description !== void 0) return description;
  if (code >= 4e3 && code <= 4999) return "private use";
  if (code >= 3e3 && code <= 3999) return "registered";
  return "unknown";
}
const KiB = 1024;
const DEFAULTS = {
  maxMessageSize: 16777216,
  // 16 MiB, inclusive; Autobahn 9.* sends exactly 16 MiB
  maxFragments: 131072,
  // Autobahn 9.3.1 sends 4 MiB in 65,536 fragments
  closeTimeout: 5e3,
  pingInterval: 2e4,
  pingTimeout: 2e4,
  handshakeTimeout: 1e4,
  highWaterMark: 65536,
  // 64 KiB
  maxQueuedMessages: 1024,
  maxQueuedBytes: 1048576
  // 1 MiB
};
const DEFAULT_MAX_HEADERS = 100;
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
class WebSocketError extends Error {
  code;
  reason;
  /** The HTTP status of a refused handshake. */
  status;
  /** The HTTP headers of a refused handshake. */
  headers;
  constructor(code, reason = "", options = {}) {
    const detail = reason ? `: ${reason}` : "";
    super(`websocket closed with status ${code} (${describeCloseCode(code)})${detail}`, { cause: options.cause });
    this.name = "WebSocketError";
    this.code = code;
    this.reason = reason;
    if (options.status !== void 0) this.status = options.status;
    if (options.headers !== void 0) this.headers = options.headers;
  }
}
function isOk(error) {
  return error instanceof WebSocketError && (error.code === 1e3 || error.code === 1001 || error.code === 1005);
}
function isValidCloseCode(code) {
  return code >= 1e3 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006 || code >= 3e3 && code <= 4999;
}
function checkCloseArguments(code, reason) {
  if (!Number.isInteger(code)) throw new TypeError(`close code must be an integer, got ${String(code)}`);
  if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent (RFC 6455 \xA77.4)`);
  const bytes = utf8Length(reason);
  if (bytes > MAX_CLOSE_REASON) throw new RangeError(`close reason is ${bytes} bytes; at most ${MAX_CLOSE_REASON} fit in a close frame`);
}
const MAX_CLOSE_REASON = 123;
function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 128) continue;
    if (unit < 2048) {
      bytes += 1;
    } else if (unit >= 55296 && unit <= 56319 && (text.charCodeAt(i + 1) & 64512) === 56320) {
      bytes += 2;
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}
const textEncoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function isDataView(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}
function toBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return new Uint8Array(chunk);
}
function byteLength(parts) {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}
const allocateZeroed = (size) => new Uint8Array(size);
function concatBytes(parts, length = byteLength(parts), allocate = allocateZeroed) {
  if (parts.length === 1) return parts[0];
  const out = allocate(length);
  copyParts(parts, out);
  return out;
}
function ownedMessage(parts, length, allocate) {
  const only = parts.length === 1 ? parts[0] : null;
  if (only && only.byteLength * 2 >= only.buffer.byteLength) return only;
  const message = allocate(length);
  copyParts(parts, message);
  return message;
}
function copyParts(parts, target) {
  let offset = 0;
  for (const part of parts) {
    target.set(part, offset);
    offset += part.length;
  }
}
let randomPool = new Uint8Array(0);
let randomOffset = 0;
function randomBytes(length) {
  if (randomOffset + length > randomPool.length) {
    randomPool = globalThis.crypto.getRandomValues(new Uint8Array(Math.max(4096, length)));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + length);
  randomOffset += length;
  return bytes;
}
function latin1(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return text;
}
function base64(bytes) {
  return btoa(latin1(bytes));
}
const setImmediateIfAny = globalThis.setImmediate;
const defer = setImmediateIfAny ? (callback) => void setImmediateIfAny(callback) : (callback) => void setTimeout(callback, 0);
function truncateUtf8(text, limit) {
  const bytes = textEncoder.encode(text);
  if (bytes.length <= limit) return bytes;
  let end = limit;
  while (end > 0 && (bytes[end] & 192) === 128) end--;
  return bytes.subarray(0, end);
}
function ignoreValue() {
}
const MAX_TIMER_MS = 2147483647;
function timerDelay(ms) {
  return ms <= MAX_TIMER_MS ? ms : MAX_TIMER_MS;
}
function startTimer(ms, callback) {
  const timer = setTimeout(callback, timerDelay(ms));
  timer.unref?.();
  return timer;
}
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const UNSAFE_HEADER_VALUE = /[\r\n\0]/;
const KEY = /^[A-Za-z0-9+/]{22}==$/;
const HANDSHAKE_HEADERS = /* @__PURE__ */ new Set([
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions"
]);
const HTTP_REASONS = {
  101: "Switching Protocols",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable"
};
function headerTokens(value) {
  if (!value) return [];
  return value.split(",").map((token) => token.trim()).filter((token) => token !== "");
}
function hasToken(value, token) {
  return headerTokens(value).some((item) => item.toLowerCase() === token);
}
function normalizeProtocols(protocols) {
  const list = protocols === void 0 ? [] : typeof protocols === "string" ? [protocols] : protocols;
  for (const protocol of list) {
    if (!TOKEN.test(protocol)) throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}: it must be an HTTP token`);
  }
  if (new Set(list).size !== list.length) throw new TypeError("subprotocols must be unique");
  return list;
}
function checkClientHeaders(headers) {
  const checked = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (typeof value !== "string" || UNSAFE_HEADER_VALUE.test(value)) {
      throw new TypeError(`invalid value for header ${name}: it must be a string without CR, LF or NUL`);
    }
    if (HANDSHAKE_HEADERS.has(name.toLowerCase())) throw new TypeError(`header ${name} is set by the handshake itself`);
    checked[name] = value;
  }
  return checked;
}
function acceptKey(key, sha1Base64) {
  return sha1Base64(key + WEBSOCKET_GUID);
}
function checkClientRequest(method, httpVersion, headers) {
  if (method !== "GET") return { status: 405, headers: { Allow: "GET" }, body: "the WebSocket handshake must be a GET request" };
  const [major = 0, minor = 0] = httpVersion.split(".").map(Number);
  if (!(major > 1 || major === 1 && minor >= 1)) return { status: 400, body: "the WebSocket handshake needs HTTP/1.1" };
  if (!hasToken(headers["upgrade"], "websocket")) {
    return { status: 426, headers: { Upgrade: "websocket" }, body: "this is a WebSocket endpoint: Upgrade: websocket required" };
  }
  if (!hasToken(headers["connection"], "upgrade")) return { status: 400, body: 'Connection header must contain "upgrade"' };
  if (!headers["host"]) return { status: 400, body: "Host header missing" };
  const offer = checkWebSocketOffer(headers);
  if ("status" in offer) return offer;
  const key = headers["sec-websocket-key"];
  if (key === void 0 || !KEY.test(key)) return { status: 400, body: "Sec-WebSocket-Key must be 16 bytes in base64" };
  return { key, protocols: offer.protocols };
}
function checkWebSocketOffer(headers) {
  if (headers["sec-websocket-version"] !== "13") {
    return { status: 426, headers: { "Sec-WebSocket-Version": "13" }, body: "unsupported Sec-WebSocket-Version: only 13 is supported" };
  }
  const protocols = headerTokens(headers["sec-websocket-protocol"]);
  if (!protocols.every((protocol) => TOKEN.test(protocol))) return { status: 400, body: "Sec-WebSocket-Protocol must be a list of tokens" };
  return { protocols };
}
function checkExtendedConnect(headers) {
  if (headers[":method"] !== "CONNECT") return { status: 405, headers: { Allow: "CONNECT" }, body: "a WebSocket over HTTP/2 opens with CONNECT" };
  const protocol = headers[":protocol"];
  if (protocol === void 0) return { status: 405, body: "only an extended CONNECT with :protocol websocket is served here (RFC 8441)" };
  if (protocol.toLowerCase() !== "websocket") return { status: 501, body: `the :protocol ${JSON.stringify(protocol)} is not served here; only websocket` };
  for (const name of [":scheme", ":path", ":authority"]) {
    if (!headers[name]) return { status: 400, body: `an extended CONNECT needs ${name} (RFC 8441 \xA74)` };
  }
  return checkWebSocketOffer(headers);
}
const HTTP1_ONLY_HEADERS = /* @__PURE__ */ new Set(["connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding", "host"]);
function extendedConnectHeaders(target, headers, protocols, extensions) {
  const request = {
    ":method": "CONNECT",
    ":protocol": "websocket",
    ":scheme": "https",
    ":authority": target.host,
    ":path": target.pathname + target.search
  };
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === "host") request[":authority"] = value;
    else if (!HTTP1_ONLY_HEADERS.has(lower)) request[lower] = value;
  }
  request["sec-websocket-version"] = "13";
  if (protocols.length > 0) request["sec-websocket-protocol"] = protocols.join(", ");
  if (extensions) request["sec-websocket-extensions"] = extensions;
  return request;
}
function formatHeaders(headers) {
  let text = "";
  for (const name in headers) text += `${name}: ${headers[name]}\r
`;
  return text;
}
function formatAcceptance(accept, protocol, extensions) {
  const headers = { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Accept": accept };
  if (protocol) headers["Sec-WebSocket-Protocol"] = protocol;
  if (extensions) headers["Sec-WebSocket-Extensions"] = extensions;
  return `HTTP/1.1 101 Switching Protocols\r
${formatHeaders(headers)}\r
`;
}
function formatRefusal(refusal) {
  const { body, headers } = refusalContent(refusal);
  return `HTTP/1.1 ${refusal.status} ${HTTP_REASONS[refusal.status] ?? "Refused"}\r
${formatHeaders(headers)}\r
${body}`;
}
function refusalContent(refusal) {
  const body = refusal.body ?? HTTP_REASONS[refusal.status] ?? "";
  const headers = {};
  for (const [name, value] of Object.entries(refusal.headers ?? {})) {
    if (!TOKEN.test(name) || UNSAFE_HEADER_VALUE.test(value)) throw new TypeError(`invalid refusal header ${name}`);
    headers[name] = value;
  }
  headers["Content-Type"] = "text/plain; charset=utf-8";
  headers["Content-Length"] = String(textEncoder.encode(body).length);
  headers["Connection"] = "Upgrade" in headers ? "Upgrade, close" : "close";
  return { body, headers };
}
function chooseProtocol(offered, request, options) {
  if (options.selectProtocol) {
    const chosen = options.selectProtocol(offered, request) ?? "";
    if (chosen !== "" && !offered.includes(chosen)) throw new Error(`selectProtocol chose ${JSON.stringify(chosen)}, which the client did not offer`);
    return chosen;
  }
  return options.protocols?.find((protocol) => offered.includes(protocol)) ?? "";
}
function checkServerResponse(headers, expectedAccept, offered) {
  const fail = handshakeFailure(101, headers);
  if (!hasToken(headers["upgrade"], "websocket")) throw fail('the response has no "Upgrade: websocket"');
  if (!hasToken(headers["connection"], "upgrade")) throw fail('the response has no "Connection: upgrade"');
  if (headers["sec-websocket-accept"] !== expectedAccept) throw fail("Sec-WebSocket-Accept does not match the key");
  return chosenProtocol(headers, offered, fail);
}
function checkStreamResponse(status, headers, offered) {
  return chosenProtocol(headers, offered, handshakeFailure(status, headers));
}
function handshakeFailure(status, headers) {
  return (why) => new WebSocketError(1006, `handshake failed: ${why}`, { status, headers });
}
function chosenProtocol(headers, offered, fail) {
  const protocol = headers["sec-websocket-protocol"] ?? "";
  if (protocol !== "" && !offered.includes(protocol)) throw fail(`the server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`);
  return protocol;
}
const DEFLATE = "permessage-deflate";
const DEFLATE_PARAMS = /* @__PURE__ */ new Set(["server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits"]);
function checkCompressionOptions(compression) {
  if (!compression) return null;
  const settings = compression === true ? {} : compression;
  for (const key of ["serverMaxWindowBits", "clientMaxWindowBits"]) {
    const bits = settings[key];
    if (bits !== void 0 && !(Number.isInteger(bits) && bits >= 8 && bits <= 15)) throw new RangeError(`compression.${key} must be an integer from 8 to 15, got ${String(bits)}`);
  }
  const { level, memLevel, threshold } = settings;
  if (level !== void 0 && !(Number.isInteger(level) && level >= 0 && level <= 9)) throw new RangeError(`compression.level must be an integer from 0 to 9, got ${String(level)}`);
  if (memLevel !== void 0 && !(Number.isInteger(memLevel) && memLevel >= 1 && memLevel <= 9)) throw new RangeError(`compression.memLevel must be an integer from 1 to 9, got ${String(memLevel)}`);
  if (threshold !== void 0 && !(threshold >= 0)) throw new RangeError(`compression.threshold must be a number \u2265 0, got ${String(threshold)}`);
  return settings;
}
function parseExtensions(header) {
  const offers = [];
  for (const item of header.split(",")) {
    const [name = "", ...rawParams] = item.split(";").map((part) => part.trim());
    if (name === "" && rawParams.length === 0) continue;
    if (!TOKEN.test(name)) return null;
    const params = /* @__PURE__ */ new Map();
    for (const raw of rawParams) {
      const parameter = parseExtensionParameter(raw);
      if (!parameter || params.has(parameter[0])) return null;
      params.set(...parameter);
    }
    offers.push({ name, params });
  }
  return offers;
}
const EXTENSION_PARAMETER = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s*=\s*(?:([!#$%&'*+\-.^_`|~0-9A-Za-z]+)|"((?:[^"\\]|\\.)*)"))?$/;
function parseExtensionParameter(raw) {
  const match = EXTENSION_PARAMETER.exec(raw);
  if (!match) return null;
  const [, name = "", token, quoted] = match;
  if (quoted === void 0) return [name, token ?? true];
  const value = quoted.replace(/\\(.)/g, "$1");
  return TOKEN.test(value) ? [name, value] : null;
}
function windowBits(value) {
  return typeof value === "string" && /^(8|9|1[0-5])$/.test(value) ? Number(value) : null;
}
function formatDeflateOffer(settings) {
  const params = [DEFLATE];
  if (settings.serverNoContextTakeover) params.push("server_no_context_takeover");
  if (settings.clientNoContextTakeover) params.push("client_no_context_takeover");
  if (settings.serverMaxWindowBits !== void 0) params.push(`server_max_window_bits=${settings.serverMaxWindowBits}`);
  params.push(settings.clientMaxWindowBits !== void 0 ? `client_max_window_bits=${settings.clientMaxWindowBits}` : "client_max_window_bits");
  return params.join("; ");
}
function formatDeflateParameters(agreed, includeServerBits, includeClientBits) {
  const params = [DEFLATE];
  if (agreed.serverNoContextTakeover) params.push("server_no_context_takeover");
  if (agreed.clientNoContextTakeover) params.push("client_no_context_takeover");
  if (includeServerBits) params.push(`server_max_window_bits=${agreed.serverMaxWindowBits}`);
  if (includeClientBits) params.push(`client_max_window_bits=${agreed.clientMaxWindowBits}`);
  return params.join("; ");
}
function acceptDeflateOffer(header, settings) {
  for (const { name, params } of parseExtensions(header ?? "") ?? []) {
    if (name !== DEFLATE || [...params.keys()].some((key) => !DEFLATE_PARAMS.has(key))) continue;
    const serverNoContext = params.get("server_no_context_takeover");
    const clientNoContext = params.get("client_no_context_takeover");
    const serverBits = params.get("server_max_window_bits");
    const clientBits = params.get("client_max_window_bits");
    if (serverNoContext !== void 0 && serverNoContext !== true || clientNoContext !== void 0 && clientNoContext !== true) continue;
    if (serverBits !== void 0 && windowBits(serverBits) === null) continue;
    if (clientBits !== void 0 && clientBits !== true && windowBits(clientBits) === null) continue;
    const offeredServerBits = serverBits === void 0 ? 15 : windowBits(serverBits);
    const offeredClientBits = clientBits === void 0 || clientBits === true ? 15 : windowBits(clientBits);
    const agreed = {
      serverNoContextTakeover: serverNoContext === true || settings.serverNoContextTakeover === true,
      clientNoContextTakeover: clientNoContext === true || settings.clientNoContextTakeover === true,
      serverMaxWindowBits: Math.min(offeredServerBits, settings.serverMaxWindowBits ?? 15),
      // A client that did not offer client_max_window_bits cannot be limited (RFC 7692 §7.1.2.2).
      clientMaxWindowBits: clientBits === void 0 ? 15 : Math.min(offeredClientBits, settings.clientMaxWindowBits ?? 15)
    };
    const limitServer = serverBits !== void 0 || settings.serverMaxWindowBits !== void 0;
    const limitClient = clientBits !== void 0 && (settings.clientMaxWindowBits !== void 0 || clientBits !== true);
    return { agreed, response: formatDeflateParameters(agreed, limitServer, limitClient) };
  }
  return null;
}
function checkDeflateResponse(header, offered) {
  if (!header) return null;
  const fail = (why) => new WebSocketError(CloseCode.MANDATORY_EXTENSION, `the server's extensions are not acceptable: ${why} (${header})`);
  const extensions = parseExtensions(header);
  if (!extensions) throw fail("malformed header");
  const [extension] = extensions;
  if (!offered || !extension || extensions.length !== 1 || extension.name !== DEFLATE) throw fail("not what was offered");
  const { params } = extension;
  for (const [key, value] of params) {
    if (!DEFLATE_PARAMS.has(key)) throw fail(`unknown parameter ${key}`);
    if (key.endsWith("no_context_takeover") ? value !== true : windowBits(value) === null) throw fail(`invalid value for ${key}`);
  }
  const serverBits = windowBits(params.get("server_max_window_bits")) ?? 15;
  const clientBits = windowBits(params.get("client_max_window_bits")) ?? offered.clientMaxWindowBits ?? 15;
  if (offered.serverMaxWindowBits !== void 0 && serverBits > offered.serverMaxWindowBits) throw fail("server_max_window_bits above the offer");
  if (clientBits > (offered.clientMaxWindowBits ?? 15)) throw fail("client_max_window_bits above the offer");
  if (offered.serverNoContextTakeover && !params.has("server_no_context_takeover")) throw fail("server_no_context_takeover was asked for");
  return {
    serverNoContextTakeover: params.has("server_no_context_takeover"),
    clientNoContextTakeover: params.has("client_no_context_takeover") || offered.clientNoContextTakeover === true,
    serverMaxWindowBits: serverBits,
    clientMaxWindowBits: clientBits
  };
}
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
function applyMask(data, key, offset = 0) {
  maskInPlace(data, keyWord(key), offset);
}
function keyWord(key, at = 0) {
  return key[at] | key[at + 1] << 8 | key[at + 2] << 16 | key[at + 3] << 24;
}
function rotateKey(word, offset) {
  const shift = (offset & 3) << 3;
  return shift === 0 ? word : word >>> shift | word << 32 - shift;
}
function maskInPlace(data, word, offset) {
  const kernel2 = data.length >= KERNEL_MIN_MASK ? maskKernel() : null;
  if (kernel2) maskThroughKernel(kernel2, data, data, 0, rotateKey(word, offset));
  else maskWords(data, word, offset);
}
function copyMasked(source, target, targetOffset, key) {
  copyMaskedWord(source, target, targetOffset, keyWord(key), 0);
}
function copyMaskedWord(source, target, targetOffset, word, offset) {
  const kernel2 = source.length >= KERNEL_MIN_COPY ? maskKernel() : null;
  if (kernel2) return maskThroughKernel(kernel2, source, target, targetOffset, rotateKey(word, offset));
  target.set(source, targetOffset);
  maskWords(target.subarray(targetOffset, targetOffset + source.length), word, offset);
}
const KERNEL_MIN_MASK = 512;
const KERNEL_MIN_COPY = 64;
const KERNEL_BLOCK = 16 * 1024;
const MASK_KERNEL = "AGFzbQEAAAABBwFgA39/fwADAgEABQQBAQEBBwkCAW0CAAF4AAAK1AEB0QECAX8BeyAC/REhBCAAIAFBQHFqIQMCQANAIAAgA08NASAAIAD9AAQAIAT9Uf0LBAAgACAA/QAEECAE/VH9CwQQIAAgAP0ABCAgBP1R/QsEICAAIAD9AAQwIAT9Uf0LBDAgAEHAAGohAAwACwsgAyABQTBxaiEDAkADQCAAIANPDQEgACAA/QAEACAE/VH9CwQAIABBEGohAAwACwsgAyABQQ9xaiEDAkADQCAAIANPDQEgACAALQAAIAJzOgAAIAJBCHghAiAAQQFqIQAMAAsLCw==";
let kernel;
function maskKernel() {
  if (kernel !== void 0) return kernel;
  kernel = null;
  const wasm = globalThis.WebAssembly;
  try {
    const bytes = Uint8Array.from(atob(MASK_KERNEL), (char) => char.charCodeAt(0));
    if (wasm?.validate(bytes)) {
      const { exports } = new wasm.Instance(new wasm.Module(bytes));
      kernel = { memory: new Uint8Array(exports.m.buffer, 0, KERNEL_BLOCK), xor: exports.x };
    }
  } catch {
  }
  return kernel;
}
function maskThroughKernel(kernel2, source, target, targetOffset, word) {
  const length = source.length;
  for (let at = 0; at < length; at += KERNEL_BLOCK) {
    const size = Math.min(KERNEL_BLOCK, length - at);
    kernel2.memory.set(size === length ? source : source.subarray(at, at + size));
    kernel2.xor(0, size + 15 & ~15, word);
    target.set(size === KERNEL_BLOCK ? kernel2.memory : kernel2.memory.subarray(0, size), targetOffset + at);
  }
}
function maskWords(data, keyWord2, offset) {
  const length = data.length;
  let i = 0;
  if (length >= 32 && LITTLE_ENDIAN) {
    const head = 4 - (data.byteOffset & 3) & 3;
    for (; i < head; i++) data[i] ^= rotateKey(keyWord2, offset + i) & 255;
    const words = length - i >>> 2;
    const word = rotateKey(keyWord2, offset + i);
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    const unrolled = words - (words & 3);
    let w = 0;
    for (; w < unrolled; w += 4) {
      view[w] ^= word;
      view[w + 1] ^= word;
      view[w + 2] ^= word;
      view[w + 3] ^= word;
    }
    for (; w < words; w++) view[w] ^= word;
    i += words << 2;
  }
  for (; i < length; i++) data[i] ^= rotateKey(keyWord2, offset + i) & 255;
}
function frameHeaderSize(length, masked) {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}
function writeFrameHeader(target, fin, rsv1, opcode, length, maskKey) {
  target[0] = (fin ? 128 : 0) | (rsv1 ? 64 : 0) | opcode;
  const maskBit = maskKey ? 128 : 0;
  let offset;
  if (length < 126) {
    target[1] = maskBit | length;
    offset = 2;
  } else if (length < 65536) {
    target[1] = maskBit | 126;
    target[2] = length >>> 8;
    target[3] = length & 255;
    offset = 4;
  } else {
    target[1] = maskBit | 127;
    const high = Math.floor(length / 2 ** 32);
    const low = length >>> 0;
    target[2] = 0;
    target[3] = 0;
    target[4] = high >>> 8 & 255;
    target[5] = high & 255;
    target[6] = low >>> 24;
    target[7] = low >>> 16 & 255;
    target[8] = low >>> 8 & 255;
    target[9] = low & 255;
    offset = 10;
  }
  if (maskKey) target.set(maskKey, offset);
}
function encodeFrame(frame) {
  const maskKey = frame.mask === true ? randomBytes(4) : frame.mask || null;
  return buildFrame(frame.fin ?? true, frame.rsv1 ?? false, frame.opcode, frame.payload ?? new Uint8Array(0), maskKey);
}
function buildFrame(fin, rsv1, opcode, payload, maskKey, allocate = allocateZeroed) {
  const headerSize = frameHeaderSize(payload.length, maskKey !== null);
  const bytes = allocate(headerSize + payload.length);
  writeFrameHeader(bytes, fin, rsv1, opcode, payload.length, maskKey);
  if (maskKey) copyMasked(payload, bytes, headerSize, maskKey);
  else bytes.set(payload, headerSize);
  return bytes;
}
function buildTextFrame(text, maskKey, allocate = allocateZeroed) {
  const masked = maskKey !== null;
  const room = frameHeaderSize(text.length * 3, masked);
  const buffer = allocate(room + text.length * 3);
  const { written } = textEncoder.encodeInto(text, buffer.subarray(room));
  const frame = buffer.subarray(room - frameHeaderSize(written, masked), room + written);
  writeFrameHeader(frame, true, false, Opcode.TEXT, written, maskKey);
  if (maskKey) applyMask(buffer.subarray(room, room + written), maskKey);
  return frame;
}
const isControl = (opcode) => opcode >= 8;
const isKnownOpcode = (opcode) => opcode <= 2 || opcode >= 8 && opcode <= 10;
class FrameParser {
  #sink;
  #expectMasked;
  #allowRsv1;
  /** Header bytes from the end of the previous chunk, waiting for the rest. */
  #pending = null;
  #stopped = false;
  /** While held, input waits here: what followed the frame that asked for the hold, then new chunks. */
  #held = null;
  #holdRequested = false;
  /** Payload bytes still to come in the current frame; -1 between frames. */
  #remaining = -1;
  #masked = false;
  /** The frame's masking key as a word (see `keyWord`): a number, not a 4-byte array per connection. */
  #maskWord = 0;
  /** Payload bytes of the current frame read so far. */
  #payloadRead = 0;
  /** `expectMasked`: true on a server (client frames must be masked), false on a client. */
  constructor(sink, options) {
    this.#sink = sink;
    this.#expectMasked = options.expectMasked;
    this.#allowRsv1 = options.allowRsv1 ?? false;
  }
  /** Ignores all further input, even the rest of the chunk being parsed (after a close frame). */
  stop() {
    this.#stopped = true;
    this.#pending = null;
    this.#held = null;
  }
  /**
   * Stops after the current frame: further input is kept, unparsed, until `release()`. The
   * sink asks for this while it finishes a message asynchronously (inflating it), so that
   * everything behind that message keeps its order.
   */
  hold() {
    this.#holdRequested = true;
  }
  /** Parses the input kept since `hold()`; it may hold again. */
  release() {
    const held = this.#held ?? [];
    this.#held = null;
    for (let i = 0; i < held.length; i++) {
      this.push(held[i]);
      if (this.#held) {
        this.#held.push(...held.slice(i + 1));
        return;
      }
    }
  }
  push(chunk) {
    if (this.#stopped) return;
    if (this.#held) {
      this.#held.push(chunk);
      return;
    }
    let bytes = chunk;
    if (this.#pending) {
      bytes = concatBytes([this.#pending, chunk], this.#pending.length + chunk.length);
      this.#pending = null;
    }
    let offset = 0;
    while (offset < bytes.length && !this.#stopped) {
      if (this.#remaining < 0) {
        const consumed = this.#readHeader(bytes, offset);
        if (consumed === 0) {
          this.#pending = bytes.slice(offset);
          return;
        }
        offset += consumed;
      } else {
        offset = this.#readPayload(bytes, offset);
      }
      if (this.#holdRequested) {
        this.#holdRequested = false;
        this.#held = offset < bytes.length ? [bytes.subarray(offset)] : [];
        return;
      }
    }
  }
  /** Reads a header at `offset`; returns its size, or 0 if it is not complete yet. */
  #readHeader(bytes, offset) {
    const available = bytes.length - offset;
    if (available < 2) return 0;
    const first = bytes[offset];
    const second = bytes[offset + 1];
    const masked = (second & 128) !== 0;
    let length = second & 127;
    const size = (length < 126 ? 2 : length === 126 ? 4 : 10) + (masked ? 4 : 0);
    if (available < size) return 0;
    const fin = (first & 128) !== 0;
    const rsv1 = (first & 64) !== 0;
    const opcode = first & 15;
    if ((first & 48) !== 0 || rsv1 && !this.#allowRsv1) throw protocolError("reserved bits set");
    if (!isKnownOpcode(opcode)) throw protocolError(`reserved opcode ${opcode}`);
    if (masked !== this.#expectMasked) throw protocolError(masked ? "masked frame from a server" : "unmasked frame from a client");
    if (length === 126) {
      length = bytes[offset + 2] << 8 | bytes[offset + 3];
    } else if (length === 127) {
      if (bytes[offset + 2] & 128) throw protocolError("frame length has its most significant bit set");
      const high = (bytes[offset + 2] << 24 | bytes[offset + 3] << 16 | bytes[offset + 4] << 8 | bytes[offset + 5]) >>> 0;
      const low = (bytes[offset + 6] << 24 | bytes[offset + 7] << 16 | bytes[offset + 8] << 8 | bytes[offset + 9]) >>> 0;
      length = high * 2 ** 32 + low;
    }
    if (isControl(opcode)) {
      if (!fin) throw protocolError("fragmented control frame");
      if (length > 125) throw protocolError("control frame longer than 125 bytes");
    }
    this.#masked = masked;
    if (masked) this.#maskWord = keyWord(bytes, offset + size - 4);
    this.#payloadRead = 0;
    this.#sink.onFrameHeader({ fin, rsv1, opcode, length });
    if (length === 0) {
      this.#sink.onFrameEnd();
    } else {
      this.#remaining = length;
    }
    return size;
  }
  #readPayload(bytes, offset) {
    const take = Math.min(this.#remaining, bytes.length - offset);
    let piece = bytes.subarray(offset, offset + take);
    const target = this.#sink.payloadTarget?.(take) ?? null;
    const at = this.#payloadRead;
    if (target) {
      if (this.#masked) copyMaskedWord(piece, target, at, this.#maskWord, at);
      else target.set(piece, at);
      piece = target.subarray(at, at + take);
    } else if (this.#masked) {
      maskInPlace(piece, this.#maskWord, at);
    }
    this.#payloadRead += take;
    this.#remaining -= take;
    const complete = this.#remaining === 0;
    if (complete) this.#remaining = -1;
    this.#sink.onFramePayload(piece, complete);
    if (complete) this.#sink.onFrameEnd();
    return offset + take;
  }
}
function protocolError(reason) {
  return new WebSocketError(CloseCode.PROTOCOL_ERROR, reason);
}
function parseClosePayload(payload) {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS_RECEIVED, reason: "" };
  if (payload.length === 1) throw protocolError("close frame with a 1-byte payload");
  const code = payload[0] << 8 | payload[1];
  if (!isValidCloseCode(code)) throw protocolError(`invalid close code ${code}`);
  let reason;
  try {
    reason = utf8Decoder.decode(payload.subarray(2));
  } catch (cause) {
    throw new WebSocketError(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8", { cause });
  }
  return { code, reason };
}
function encodeClosePayload(code, reasonBytes) {
  if (code === CloseCode.NO_STATUS_RECEIVED) return new Uint8Array(0);
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >>> 8;
  payload[1] = code & 255;
  payload.set(reasonBytes, 2);
  return payload;
}
function closeFor(ws, reason, otherwise) {
  if (!(reason instanceof WebSocketError) || !isValidCloseCode(reason.code)) return ws.close(otherwise);
  return ws.close(reason.code, utf8Decoder.decode(truncateUtf8(reason.reason, MAX_CLOSE_REASON)));
}
const QUEUE_COMPACT_AT = 64;
const resolvedOptions = /* @__PURE__ */ new WeakMap();
function resolveOptions(options) {
  let resolved = resolvedOptions.get(options);
  if (resolved) return resolved;
  resolved = readNumbers(DEFAULTS, options);
  resolvedOptions.set(options, resolved);
  return resolved;
}
function readNumbers(defaults, options, minimum = {}) {
  const read = { ...defaults };
  for (const key of Object.keys(defaults)) {
    const value = options[key];
    if (value === void 0) continue;
    const least = minimum[key] ?? 0;
    if (typeof value !== "number" || !(value >= least)) throw new RangeError(`option ${key} must be a number \u2265 ${least}, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
    read[key] = value;
  }
  return read;
}
let endOf;
function settleEnded(waiter, error, quiet2) {
  if (waiter.iterator) waiter.iterator.finished = true;
  if (waiter.iterator && quiet2) waiter.resolve(DONE);
  else waiter.reject(error);
}
let endQuietlyOn;
let linkOf;
let track;
let nextFor;
let abandon;
const DONE = Object.freeze({ value: void 0, done: true });
class MessageIterator {
  #ws;
  finished = false;
  constructor(ws) {
    this.#ws = ws;
  }
  next() {
    return this.finished ? Promise.resolve(DONE) : nextFor(this.#ws, this);
  }
  /** Ends the iteration (a `break`); a next() still waiting ends with `done` and takes no message. */
  return() {
    this.finished = true;
    abandon(this.#ws, this);
    return Promise.resolve(DONE);
  }
  [Symbol.asyncIterator]() {
    return this;
  }
}
let pushPiece;
let failStream;
class MessageStream {
  #owner;
  #pieces = [];
  #bytes = 0;
  #readers = [];
  /** The message has started arriving here, and has arrived in full. */
  #bound = false;
  #ended = false;
  /** What the next read after the pieces throws, once; null if nothing failed. */
  #error = null;
  /** Read to its end, failed or abandoned: nothing more is taken in. */
  #finished = false;
  /** Removes the signal's listener. */
  #onFinish = null;
  static {
    pushPiece = (stream, data, last) => stream.#push(data, last);
    failStream = (stream, error) => stream.#fail(error);
  }
  /** @internal Use `ws.receiveStream()`. */
  constructor(owner, signal) {
    this.#owner = owner;
    if (!signal) return;
    const onAbort = () => this.#giveUp({ reason: signal.reason });
    signal.addEventListener("abort", onAbort, { once: true });
    this.#onFinish = () => signal.removeEventListener("abort", onAbort);
  }
  /** Bytes of the pieces waiting to be read. */
  get bufferedBytes() {
    return this.#bytes;
  }
  /** Pieces waiting to be read. */
  get bufferedPieces() {
    return this.#pieces.length;
  }
  next() {
    if (this.#pieces.length > 0) return Promise.resolve({ value: this.#take(), done: false });
    if (this.#error) {
      const { reason } = this.#error;
      this.#error = null;
      return Promise.reject(reason);
    }
    if (this.#finished) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }));
  }
  /** Abandons the message (a `break`): what is buffered and the rest of it are dropped. */
  return() {
    this.#giveUp(null);
    return Promise.resolve(DONE);
  }
  [Symbol.asyncIterator]() {
    return this;
  }
  #take() {
    const piece = this.#pieces.shift();
    this.#bytes -= piece.length;
    if (this.#pieces.length === 0 && this.#ended) this.#finish();
    this.#owner.released();
    return piece;
  }
  #push(data, last) {
    if (this.#finished) return;
    const first = !this.#bound;
    this.#bound = true;
    if (last) this.#ended = true;
    if (data.length > 0 || first && last) {
      const reader = this.#readers.shift();
      if (reader) reader.resolve({ value: data, done: false });
      else {
        this.#pieces.push(data);
        this.#bytes += data.length;
      }
    }
    if (this.#ended && this.#pieces.length === 0) this.#finish();
  }
  #fail(reason) {
    if (this.#finished || this.#ended) return;
    this.#error = { reason };
    this.#finish();
  }
  /** Abandoned (`error` null) or aborted: nothing more is read or taken in. */
  #giveUp(error) {
    if (this.#finished && this.#pieces.length === 0) return;
    this.#pieces.length = 0;
    this.#bytes = 0;
    this.#error = error;
    this.#settleReaders();
    if (!this.#finished) this.#finish();
    this.#owner.released();
  }
  /** Waiting reads end: with the error, once, else done. */
  #settleReaders() {
    for (const reader of this.#readers.splice(0)) {
      if (this.#error) {
        reader.reject(this.#error.reason);
        this.#error = null;
      } else reader.resolve(DONE);
    }
  }
  #finish() {
    this.#finished = true;
    if (this.#pieces.length === 0) this.#settleReaders();
    this.#onFinish?.();
    this.#owner.finished(this, this.#bound && !this.#ended);
  }
}
class WebSocket {
  /** The URL on the client; the request target on the server. */
  url;
  /** The handshake request (header names in lower case). */
  request;
  /** The handshake response (client side only). */
  response;
  /** The peer's address (Node only). */
  remoteAddress;
  #link;
  #protocol;
  #extensions;
  #maxQueuedMessages;
  #maxQueuedBytes;
  // A bounded queue of received messages, and the receive() calls waiting for one: the
  // first in a field, any more (rare) in a list. Both made on first use: memory per idle connection.
  #queue = null;
  #queueHead = 0;
  #queuedBytes = 0;
  #waiter = null;
  #moreWaiters = null;
  #readingPaused = false;
  /** How the connection ends, once known; receive() reports it after the queue. */
  #error = null;
  #closeInfo;
  /** `closed`, made on first use, and its resolver; `#gone` once the link has closed. */
  #closed = null;
  #resolveClosed = null;
  #gone = false;
  /** The set of its server's connections, which this one leaves once closed. */
  #tracker = null;
  /** Endings other than a normal close on which iteration ends without throwing (see reconnect). */
  #quietOn = null;
  /** `readable` and `writable`, made on first use. */
  #readable = null;
  #writable = null;
  /** The receiveStream() being read: messages wait behind it until it is finished. */
  #stream = null;
  /** The rest of an abandoned stream's message is being dropped. */
  #discarding = false;
  /** The link waits to start a message until #stream is finished, and one macrotask more (#settling; see #startMessage). */
  #linkWaiting = false;
  #settling = false;
  /** What streams tell this socket, made on first use. */
  #streamOwner = null;
  static {
    endOf = (ws) => ws.#error;
    endQuietlyOn = (ws, quiet2) => ws.#quietOn = quiet2;
    linkOf = (ws) => ws.#link;
    track = (ws, sockets) => {
      if (ws.#gone) return;
      ws.#tracker = sockets;
      sockets.add(ws);
    };
    nextFor = (ws, iterator) => ws.#wait(iterator);
    abandon = (ws, iterator) => {
      for (const waiter of ws.#waiters()) {
        if (waiter.iterator !== iterator) continue;
        ws.#removeWaiter(waiter);
        waiter.resolve(DONE);
      }
    };
  }
  /** What the link tells this socket: one small object with methods, not a closure each. */
  static #Events = class {
    #ws;
    constructor(ws) {
      this.#ws = ws;
    }
    startMessage() {
      return this.#ws.#startMessage();
    }
    piece(data, last) {
      this.#ws.#piece(data, last);
    }
    message(data) {
      this.#ws.#deliver(data);
    }
    ended(error, info) {
      if (info) this.#ws.#closeInfo ??= info;
      this.#ws.#onEnded(error);
    }
    closed(info) {
      const ws = this.#ws;
      ws.#closeInfo = info;
      ws.#gone = true;
      ws.#resolveClosed?.(info);
      ws.#resolveClosed = null;
      ws.#tracker?.delete(ws);
      ws.#tracker = null;
    }
  };
  /** @internal Use `open`, `connect`, `listen`, `upgrade` or `wrap`. */
  constructor(link, details, options = {}) {
    this.#link = link;
    const { maxQueuedMessages, maxQueuedBytes } = resolveOptions(options);
    this.#maxQueuedMessages = maxQueuedMessages;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.url = details.url;
    this.request = details.request;
    if (details.response) this.response = details.response;
    this.#protocol = details.protocol;
    this.#extensions = details.extensions;
    if (details.remoteAddress !== void 0) this.remoteAddress = details.remoteAddress;
    link.start(new WebSocket.#Events(this));
  }
  /** Resolves with the peer's close code and reason once the connection is gone. */
  get closed() {
    return this.#closed ??= this.#gone ? Promise.resolve(this.#closeInfo) : new Promise((resolve) => this.#resolveClosed = resolve);
  }
  /** The negotiated subprotocol, '' if none. */
  get protocol() {
    return this.#link.protocol ?? this.#protocol;
  }
  /** The negotiated extensions, '' if none. */
  get extensions() {
    return this.#link.extensions ?? this.#extensions;
  }
  /** The close code the peer sent (1005 if none, 1006 if no close frame came), once closed. */
  get closeCode() {
    return this.#closeInfo?.code;
  }
  /** The close reason the peer sent, once closed. */
  get closeReason() {
    return this.#closeInfo?.reason;
  }
  /** Bytes written but not yet handed to the operating system. */
  get bufferedAmount() {
    return this.#link.bufferedAmount;
  }
  /** Messages and bytes in and out so far, and the last ping's round-trip time. */
  get stats() {
    return this.#link.stats;
  }
  /**
   * The messages as a WHATWG `ReadableStream`: each read is a receive(), so a reader that stops
   * reading is backpressure, as receive() is. It ends on a normal close and errors with the
   * `WebSocketError` of any other; cancel(reason) closes the connection, with the code and
   * reason of a `WebSocketError` given as the reason, else with 1000.
   *
   * @example
   * await ws.readable.pipeThrough(new TransformStream({ transform: (m, c) => c.enqueue(String(m).toUpperCase()) })).pipeTo(ws.writable)
   */
  get readable() {
    return this.#readable ??= new ReadableStream({
      pull: (controller) => this.receive().then(
        (message) => controller.enqueue(message),
        (error) => isOk(error) ? controller.close() : controller.error(error)
      ),
      cancel: (reason) => closeFor(this, reason, CloseCode.NORMAL_CLOSURE)
    }, { highWaterMark: 0 });
  }
  /**
   * A WHATWG `WritableStream` whose writes are send()s (a write resolves as send() does: at the
   * high-water mark). close() runs the closing handshake with 1000; abort(reason) closes with
   * the code and reason of a `WebSocketError` given as the reason, else with 1011.
   */
  get writable() {
    return this.#writable ??= new WritableStream({
      write: (message) => this.send(message),
      close: () => this.close(),
      abort: (reason) => closeFor(this, reason, CloseCode.INTERNAL_ERROR)
    });
  }
  /**
   * The next data message: TEXT as a string, BINARY as a Uint8Array. Pings are answered and
   * pongs consumed on the way. Rejects with a `WebSocketError` once the connection has closed
   * and every message that arrived before has been received.
   *
   * @example
   * const message = await ws.receive()
   */
  receive(options) {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#wait(null, signal);
  }
  /**
   * The next message as it arrives, piece by piece (see `MessageStream`), for messages too
   * large to hold: a 1 GiB upload passes through in bounded memory. The next receive() (or
   * stream) gets the message after it, once this one is read to its end or abandoned.
   * `maxMessageSize` and `maxFragments` protect buffered messages and do not apply to a
   * streamed one: count its bytes and close with 1009 to set a limit of your own. A message
   * that had started arriving before the call, or that a native WebSocket delivers (the
   * browser facade), comes whole, as one piece. `signal` abandons the stream.
   *
   * @example
   * for await (const piece of ws.receiveStream()) await file.write(piece)
   */
  receiveStream(options) {
    const stream = new MessageStream(this.#streamOwner ??= this.#makeStreamOwner(), options?.signal);
    if (options?.signal?.aborted) failStream(stream, options.signal.reason);
    else if (!this.#stream && this.#hasQueued()) this.#giveTo({ resolve() {
    }, reject() {
    }, iterator: null, stream }, this.#dequeue());
    else if (this.#error && !this.#hasQueued()) failStream(stream, this.#error);
    else this.#line({ resolve() {
    }, reject: (error) => failStream(stream, error), iterator: null, stream });
    return stream;
  }
  #makeStreamOwner() {
    return {
      released: () => this.#resumeIfRoom(),
      finished: (stream, rest) => this.#streamFinished(stream, rest)
    };
  }
  /** A data message starts at the link: it goes to a stream first in line, or waits while a stream is being read. */
  #startMessage() {
    if (this.#stream || this.#settling) {
      this.#linkWaiting = true;
      return "wait";
    }
    const stream = this.#waiter?.stream;
    if (!stream) return "whole";
    this.#nextWaiter();
    this.#stream = stream;
    return "stream";
  }
  #piece(data, last) {
    if (this.#discarding) {
      if (last) this.#discarding = false;
      return;
    }
    if (this.#stream) pushPiece(this.#stream, typeof data === "string" ? data : data.slice(), last);
    this.#pauseIfFull();
  }
  #streamFinished(stream, rest) {
    if (this.#stream !== stream) {
      const waiter = this.#waiter?.stream === stream ? this.#waiter : this.#moreWaiters?.find((other) => other.stream === stream);
      if (waiter) this.#removeWaiter(waiter);
      return;
    }
    this.#stream = null;
    this.#discarding = rest;
    while (!this.#stream && this.#waiter && this.#hasQueued()) this.#giveTo(this.#nextWaiter(), this.#dequeue());
    if (!this.#stream && this.#error && !this.#hasQueued()) this.#onEnded(this.#error);
    this.#resumeIfRoom();
    this.#settling = true;
    defer(() => {
      this.#settling = false;
      if (this.#stream || !this.#linkWaiting) return;
      this.#linkWaiting = false;
      this.#link.proceed();
    });
  }
  #hasQueued() {
    return this.#queue !== null && this.#queueHead < this.#queue.length;
  }
  /** Hands a message to a waiter: a stream gets it as one piece, and is read before anything else. */
  #giveTo(waiter, message) {
    if (!waiter.stream) return waiter.resolve(waiter.iterator ? { value: message, done: false } : message);
    this.#stream = waiter.stream;
    const owned = typeof message === "string" || message.byteLength === message.buffer.byteLength ? message : message.slice();
    pushPiece(waiter.stream, owned, true);
  }
  #line(waiter) {
    if (!this.#waiter) this.#waiter = waiter;
    else (this.#moreWaiters ??= []).push(waiter);
  }
  /** receive(), or an iterator's next() when `iterator` is given. */
  #wait(iterator, signal) {
    if (!this.#stream && this.#hasQueued()) {
      const message = this.#dequeue();
      return Promise.resolve(iterator ? { value: message, done: false } : message);
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, iterator };
      if (this.#error && !this.#hasQueued()) return settleEnded(waiter, this.#error, this.#endsQuietly(this.#error));
      if (signal) this.#abortOn(signal, waiter);
      this.#line(waiter);
    });
  }
  /** An aborted receive() leaves the line without taking a message, and rejects with the signal's reason. */
  #abortOn(signal, waiter) {
    const { resolve, reject } = waiter;
    const onAbort = () => {
      this.#removeWaiter(waiter);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    waiter.resolve = (value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    };
    waiter.reject = (error) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    };
  }
  #waiters() {
    return this.#waiter ? [this.#waiter, ...this.#moreWaiters ?? []] : [];
  }
  #removeWaiter(waiter) {
    if (this.#waiter === waiter) {
      this.#nextWaiter();
      return;
    }
    const index = this.#moreWaiters?.indexOf(waiter) ?? -1;
    if (index >= 0) this.#moreWaiters?.splice(index, 1);
    if (this.#moreWaiters?.length === 0) this.#moreWaiters = null;
  }
  /**
   * Iterates over messages; ends on a normal close (1000, 1001, 1005) and throws on any other.
   *
   * @example
   * for await (const message of ws) await ws.send(message)
   */
  [Symbol.asyncIterator]() {
    return new MessageIterator(this);
  }
  /**
   * Sends a message: a string as TEXT, bytes as BINARY, an iterable or async iterable of
   * chunks as one fragmented message (one frame per chunk). Messages go out in call order.
   * Resolves when the socket's buffer is below the high-water mark.
   *
   * @example
   * await ws.send('text'); await ws.send(new Uint8Array([1, 2, 3])); await ws.send(['frag', 'ments'])
   */
  send(message) {
    return this.#link.send(message);
  }
  /**
   * Sends a ping and resolves with the round-trip time in milliseconds when its pong arrives.
   * Without `data`, a unique 4-byte payload is used. The pong is read after what the peer sent
   * before it: while the receive queue is full and nothing is read, it waits.
   *
   * @example
   * console.log(`rtt ${await ws.ping()} ms`)
   */
  ping(data) {
    return this.#link.ping(data);
  }
  /**
   * Sends an unsolicited pong (RFC 6455 §5.5.3), e.g. as a one-way heartbeat.
   *
   * @example
   * await ws.pong()
   */
  pong(data) {
    return this.#link.pong(data);
  }
  /**
   * Starts the closing handshake (RFC 6455 §7.1.2) and resolves when the connection is gone,
   * bounded by the close timeout. Closing twice is harmless. A code that may not be sent
   * or a reason over 123 bytes is a programming error: it throws and nothing is sent.
   *
   * @example
   * await ws.close(1000, 'bye')
   */
  async close(code = CloseCode.NORMAL_CLOSURE, reason = "") {
    checkCloseArguments(code, reason);
    this.#link.close(code, reason);
    await this.closed;
  }
  #dequeue() {
    const queue = this.#queue;
    const message = queue[this.#queueHead];
    queue[this.#queueHead++] = "";
    this.#queuedBytes -= message.length;
    if (this.#queueHead === queue.length) {
      this.#queue = null;
      this.#queueHead = 0;
    } else if (this.#queueHead >= QUEUE_COMPACT_AT && this.#queueHead * 2 >= queue.length) {
      queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
    this.#resumeIfRoom();
    return message;
  }
  /** Full at the limits; with `divisor` 2, at half of them (where reading resumes). What a stream holds counts too. */
  #queueIsFull(divisor = 1) {
    const count = (this.#queue?.length ?? 0) - this.#queueHead + (this.#stream?.bufferedPieces ?? 0);
    const bytes = this.#queuedBytes + (this.#stream?.bufferedBytes ?? 0);
    return count * divisor >= this.#maxQueuedMessages || bytes * divisor >= this.#maxQueuedBytes;
  }
  #resumeIfRoom() {
    if (!this.#readingPaused || this.#queueIsFull(2)) return;
    this.#readingPaused = false;
    this.#link.resume();
  }
  /** Backpressure: stop reading until the application catches up. */
  #pauseIfFull() {
    if (this.#readingPaused || !this.#queueIsFull()) return;
    this.#readingPaused = true;
    this.#link.pause();
  }
  #deliver(message) {
    const waiter = this.#stream ? null : this.#nextWaiter();
    if (waiter) return this.#giveTo(waiter, message);
    (this.#queue ??= []).push(message);
    this.#queuedBytes += message.length;
    this.#pauseIfFull();
  }
  #onEnded(error) {
    this.#error ??= error;
    const cut = isOk(error) ? CloseCode.ABNORMAL_CLOSURE : error.code;
    if (this.#stream) failStream(this.#stream, new WebSocketError(cut, `the connection ended (${error.code}${error.reason ? ` ${error.reason}` : ""}) before the message did`, { cause: error }));
    if (this.#stream && this.#hasQueued()) return;
    const quiet2 = this.#endsQuietly(this.#error);
    for (let waiter = this.#nextWaiter(); waiter; waiter = this.#nextWaiter()) settleEnded(waiter, this.#error, quiet2);
  }
  #endsQuietly(error) {
    return isOk(error) || (this.#quietOn?.(error) ?? false);
  }
  #nextWaiter() {
    const waiter = this.#waiter;
    this.#waiter = this.#moreWaiters?.shift() ?? null;
    if (this.#moreWaiters?.length === 0) this.#moreWaiters = null;
    return waiter;
  }
}
const State = { OPEN: 1, CLOSING: 2, CLOSED: 3 };
const RESOLVED = Promise.resolve();
const EMPTY = new Uint8Array(0);
let connectionCount = 0;
const OPCODE_NAMES = { 0: "CONTINUATION", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG" };
function payloadLength(frame) {
  const length = frame[1] & 127;
  if (length < 126) return length;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return length === 126 ? view.getUint16(2) : Number(view.getBigUint64(2));
}
function describeFrame(opcode, fin, length) {
  return `${OPCODE_NAMES[opcode] ?? `opcode ${opcode}`}${fin ? "" : " (not FIN)"} ${length} B`;
}
const NO_CLOSE_FRAME = Object.freeze({ code: CloseCode.ABNORMAL_CLOSURE, reason: "" });
const LARGE_FRAME = 16 * KiB;
const TEXT_JOIN_EVERY = 1024;
const SMALL_PART = 1024;
const SMALL_PARTS_BUFFER = 16 * KiB;
const COPY_THRESHOLD = 16 * KiB;
const MASKED_PIECE = 64 * KiB;
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
class ProtocolLink {
  #transport;
  #client;
  #options;
  #parser;
  #compression;
  #events;
  #state = State.OPEN;
  // The message being reassembled, and the frame being read.
  #messageOpcode = 0;
  // Lists made on first use and dropped after each message (memory per idle connection).
  #messageParts = null;
  #messageSize = 0;
  #messageFragments = 0;
  #messageCompressed = false;
  /** A large single-frame BINARY message: its length, its final buffer once allocated, the bytes received. */
  #largeFrame = 0;
  #messageBuffer = null;
  #messageFilled = 0;
  /** The buffer small pieces are being copied into (the last of #messageParts), and its bytes used. */
  #smallParts = null;
  #smallFilled = 0;
  /** Bytes of the small pieces since the last large one (see #collectPart). */
  #smallRun = 0;
  #textParts = null;
  /** How many of #textParts, at its start, are joined batches. */
  #textBatches = 0;
  #textDecoder = null;
  #frameOpcode = 0;
  #frameFin = false;
  #controlParts = null;
  // Reading (see #updateReading): why it would stop, and whether it has.
  #queueFull = false;
  #inflating = false;
  #readingPaused = false;
  /** Closing with a full receive queue: data frames are read and dropped, from a message boundary on. */
  #dropData = false;
  /** The data message being read is dropped (see #dropData). */
  #messageDropped = false;
  /** The data message being read goes to a receiveStream() piece by piece (#streamPiece). */
  #messageStreamed = false;
  /** A message's first frame that waits for a stream to be read (LinkEvents.startMessage), and whether it already ended (empty). */
  #waitingHeader = null;
  #waitingFrameEnded = false;
  /** A streamed compressed message: compressed pieces waiting for the inflater, and whether its end is among them. */
  #inflateInput = null;
  #inflateEnd = false;
  /** The inflater of a streamed message, waiting for room in the receive buffer: the promise, and what resolves it. */
  #room = null;
  #onRoom = null;
  // Sending: async iterables and compressed messages hold the message lock; later sends wait behind them.
  #sequencer = null;
  #drainWaiters = null;
  #pings = null;
  #pingCounter = 0;
  #pendingPong = null;
  /** Ends a send(asyncIterable) waiting for its iterable once nothing more can be written (the close frame went out, the transport is gone). */
  #writesEnd = new StepAbort();
  // Closing. `#state` is OPEN, CLOSING or CLOSED; within CLOSING, what each side has done:
  //
  //   what happened                      fields set                          what it changes
  //   close() called                     #state CLOSING, #closeRequested     new sends refused; sends accepted before still go out
  //   our close frame written            #closeSent                          nothing more is written (#canWrite false)
  //   the peer's close frame read,       #discardInput, #error,              input ignored from here on; the answer (echo, or
  //     or a protocol error found        #pendingReaction                    fail) runs one macrotask later (#react)
  //   the transport closed               #state CLOSED                       everything settles (onTransportClose)
  //
  // `#closing` is true from the first two rows on, and once the reaction to the third has run.
  // #updateReading decides reading in every row.
  #closeSent = false;
  #closeRequested = null;
  #discardInput = false;
  /** Why the connection ended, for receive() and send(); set once. */
  #error = null;
  #closeInfo = NO_CLOSE_FRAME;
  #pendingReaction = null;
  #closeTimer = null;
  // What ws.stats reports, and the id NODE_DEBUG=websockets names the connection by.
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #latency = void 0;
  #id = ++connectionCount;
  /** The next keepalive ping, or the pong deadline while `#awaitingPong`. */
  #keepaliveTimer = null;
  #awaitingPong = false;
  /** Counts keepalive rounds, so that a late pong of an earlier round starts nothing. */
  #keepaliveRound = 0;
  /** A frame arrived since the keepalive ping went out. */
  #heardSincePing = false;
  /** Unsolicited pongs while we are not reading (see #startHeartbeat). */
  #heartbeatTimer = null;
  constructor(transport, client, options, compression = null) {
    this.#transport = transport;
    this.#client = client;
    this.#options = resolveOptions(options);
    this.#compression = compression;
    this.#parser = new FrameParser(this, { expectMasked: !client, allowRsv1: compression !== null });
  }
  start(events) {
    this.#events = events;
    if (DEBUG) debugLog(this.#id, `open (${this.#client ? "client" : "server"}${this.#compression ? ", permessage-deflate" : ""})`);
    this.#scheduleKeepalive();
    this.#transport.start(this);
  }
  get bufferedAmount() {
    return this.#transport.bufferedAmount;
  }
  get stats() {
    return { messagesIn: this.#messagesIn, messagesOut: this.#messagesOut, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, latency: this.#latency };
  }
  get accepting() {
    return this.#canSend() && !this.#discardInput;
  }
  /** Every write goes through here: counted for ws.stats. */
  #write(bytes, more, written) {
    this.#bytesOut += bytes.length;
    this.#transport.write(bytes, more, written);
  }
  pause() {
    this.#queueFull = true;
    this.#updateReading();
  }
  resume() {
    this.#queueFull = false;
    this.#updateReading();
  }
  /** Closing: close() was called, a close frame went out, or the connection failed or ended. */
  get #closing() {
    return this.#state !== State.OPEN || this.#closeSent;
  }
  /**
   * The one place that pauses and resumes reading. Reading stops while a message is being
   * inflated (the parser holds what comes behind it, so that stays bounded too) and while the
   * receive queue is full (TCP backpressure) — except once closing: then the peer's close
   * frame must get through, so reading goes on, and data messages that start while the queue
   * is full are read and dropped instead of queued (#dropData). Reading also stops while a
   * message waits for a stream to be read (#waitingHeader). While reading is paused the
   * keepalive's pong deadline is suspended: a pong we are not reading cannot arrive.
   */
  #updateReading() {
    if (this.#state === State.CLOSED) return;
    const closing = this.#closing;
    if (this.#onRoom && (!this.#queueFull || closing)) this.#wakeInflater();
    if (this.#waitingHeader && closing) defer(() => this.proceed());
    const paused = this.#inflating || this.#waitingHeader !== null && !closing || this.#queueFull && !closing;
    if (paused === this.#readingPaused) return;
    this.#readingPaused = paused;
    if (paused) {
      this.#transport.pause();
      this.#suspendPongDeadline();
      this.#startHeartbeat();
    } else {
      this.#transport.resume();
      this.#stopHeartbeat();
      this.#armPongDeadline();
    }
  }
  /**
   * While we do not read, the peer's pings go unanswered: an unsolicited pong (RFC 6455
   * §5.5.3, a unidirectional heartbeat) every half `pingInterval` tells it we are alive.
   */
  #startHeartbeat() {
    const { pingInterval } = this.#options;
    if (pingInterval <= 0 || this.#heartbeatTimer) return;
    this.#heartbeatTimer = startTimer(pingInterval / 2, () => {
      this.#heartbeatTimer = null;
      if (!this.#canSend() || !this.#readingPaused) return;
      this.#writeFrame(Opcode.PONG, EMPTY, true);
      this.#startHeartbeat();
    });
  }
  #stopHeartbeat() {
    if (this.#heartbeatTimer) clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }
  // ── receiving ──────────────────────────────────────────────────────────────────────────
  /** @internal TransportEvents: called by the transport. */
  onTransportData(chunk) {
    this.#bytesIn += chunk.length;
    if (this.#discardInput) return;
    try {
      this.#parser.push(chunk);
    } catch (caught) {
      this.#onParseError(caught);
    }
  }
  /** A parse failure fails the connection once the application has had its turn. */
  #onParseError(caught) {
    const error = caught instanceof WebSocketError ? caught : new WebSocketError(CloseCode.INTERNAL_ERROR, "", { cause: caught });
    this.#setError(error);
    this.#react(() => this.#fail(error));
  }
  /** @internal FrameSink: called by the parser. */
  onFrameHeader(header) {
    const { opcode, length } = header;
    this.#heardSincePing = true;
    if (DEBUG) debugLog(this.#id, `\u2190 ${describeFrame(opcode, header.fin, length)}${header.rsv1 ? " rsv1" : ""}`);
    this.#frameOpcode = opcode;
    this.#frameFin = header.fin;
    if (header.rsv1 && (isControl(opcode) || opcode === Opcode.CONTINUATION)) throw protocolError("RSV1 set on a control or continuation frame");
    if (isControl(opcode)) return;
    if (opcode === Opcode.CONTINUATION) {
      if (this.#messageOpcode === 0) throw protocolError("continuation frame without a message to continue");
    } else {
      if (this.#messageOpcode !== 0) throw protocolError("new message started before the previous one ended");
      this.#messageOpcode = opcode;
      this.#messageCompressed = header.rsv1;
      if (this.#queueFull && this.#closing) this.#dropData = true;
      this.#messageDropped = this.#dropData;
      if (!this.#messageDropped && !this.#chooseMode()) {
        this.#waitingHeader = header;
        this.#parser.hold();
        this.#updateReading();
        return;
      }
    }
    this.#checkFrame(header);
  }
  /** Asks how the message that starts is read; false: it waits for a stream to be read (see proceed). */
  #chooseMode() {
    const mode = this.#events.startMessage();
    this.#messageStreamed = mode === "stream";
    return mode !== "wait";
  }
  /**
   * A message that waited for a stream to be read starts now (LinkEvents.startMessage asks
   * again), or is dropped if the connection is closing. The input held meanwhile is parsed.
   */
  proceed() {
    const header = this.#waitingHeader;
    if (!header || this.#state === State.CLOSED) return;
    if (this.#closing) {
      this.#messageStreamed = false;
      if (this.#queueFull) this.#messageDropped = this.#dropData = true;
    } else if (!this.#chooseMode()) return;
    this.#waitingHeader = null;
    const ended = this.#waitingFrameEnded;
    this.#waitingFrameEnded = false;
    try {
      this.#checkFrame(header);
      if (ended) this.onFrameEnd();
      this.#updateReading();
      this.#parser.release();
    } catch (caught) {
      this.#onParseError(caught);
    }
  }
  /** The limits of a data frame, checked from its header before a byte of its payload is buffered. */
  #checkFrame(header) {
    const { opcode, length } = header;
    this.#largeFrame = 0;
    if (this.#messageDropped || this.#messageStreamed) return;
    const { maxMessageSize, maxFragments } = this.#options;
    this.#messageFragments++;
    if (maxFragments > 0 && this.#messageFragments > maxFragments) {
      throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message has more than ${maxFragments} fragments`);
    }
    const limit = this.#messageCompressed ? maxMessageSize + (maxMessageSize >>> 8) + 1024 : maxMessageSize;
    if (maxMessageSize > 0 && this.#messageSize + length > limit) {
      throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message is larger than ${maxMessageSize} bytes`);
    }
    this.#messageSize += length;
    this.#largeFrame = header.fin && opcode === Opcode.BINARY && !header.rsv1 && length > LARGE_FRAME ? length : 0;
  }
  /** @internal FrameSink: called by the parser. */
  onFramePayload(bytes, complete) {
    if (isControl(this.#frameOpcode)) {
      (this.#controlParts ??= []).push(bytes);
    } else if (this.#messageDropped) {
    } else if (this.#messageStreamed) {
      this.#streamPiece(bytes);
    } else if (this.#largeFrame > 0) {
      this.#collectLargeFrame(bytes);
    } else if (this.#streamsText(complete)) {
      this.#decodeTextPiece(bytes);
    } else {
      this.#collectPart(bytes);
    }
  }
  /**
   * Whether this piece of an uncompressed TEXT message is decoded now: always, except when
   * the whole message is this one piece (one frame, in one chunk), which is decoded once at
   * the end. A compressed message is decoded as it inflates instead.
   */
  #streamsText(complete) {
    if (this.#messageOpcode !== Opcode.TEXT || this.#messageCompressed) return false;
    const wholeMessage = complete && this.#frameFin && this.#messageParts === null;
    return this.#textDecoder !== null || !wholeMessage;
  }
  /** The pieces collected so far, which the message no longer holds. */
  #takeParts() {
    const parts = this.#messageParts ?? [];
    this.#messageParts = null;
    this.#smallParts = null;
    this.#smallRun = 0;
    return parts;
  }
  /**
   * Keeps a piece of the message being reassembled. The first piece stays a view, as does any
   * piece of SMALL_PART bytes or more; later small pieces (a peer's thousands of one-byte
   * fragments) are copied together, so the memory a message holds follows the bytes received,
   * not the number of pieces.
   */
  #collectPart(bytes) {
    const parts = this.#messageParts;
    if (!parts) {
      this.#messageParts = [bytes];
      return;
    }
    if (bytes.length >= SMALL_PART) {
      this.#smallParts = null;
      this.#smallRun = 0;
      parts.push(bytes);
      return;
    }
    let buffer = this.#smallParts;
    if (!buffer || this.#smallFilled + bytes.length > buffer.length) {
      buffer = this.#smallParts = new Uint8Array(Math.min(SMALL_PARTS_BUFFER, Math.max(64, bytes.length, this.#smallRun)));
      this.#smallFilled = 0;
      parts.push(buffer);
    }
    buffer.set(bytes, this.#smallFilled);
    this.#smallFilled += bytes.length;
    this.#smallRun += bytes.length;
    parts[parts.length - 1] = buffer.subarray(0, this.#smallFilled);
  }
  #collectLargeFrame(bytes) {
    this.#messageFilled += bytes.length;
    if (!this.#messageBuffer) this.#collectPart(bytes);
  }
  /**
   * @internal FrameSink. A large frame that arrives in pieces is copied into its final buffer
   * as it comes (and unmasked on the way), instead of each chunk being held to the end and
   * copied again: the chunks die young, and the garbage collector is not pushed to promote
   * them. The buffer is allocated once half of the frame is here, never on the header's word
   * alone, so a peer cannot make us set aside more than twice what it sent. A frame that is
   * here whole needs no buffer: it is handed out as a view (see ownedMessage).
   */
  payloadTarget(available) {
    if (this.#largeFrame === 0 || this.#messageBuffer) return this.#messageBuffer;
    const arrived = this.#messageFilled + available;
    if (arrived * 2 < this.#largeFrame || this.#messageFilled === 0 && arrived === this.#largeFrame) return null;
    const buffer = this.#messageBuffer = this.#transport.allocateMessage(this.#largeFrame);
    copyParts(this.#takeParts(), buffer);
    return buffer;
  }
  /**
   * A text message that arrives in pieces is validated as it comes, so invalid UTF-8 fails
   * the connection at the first bad byte, not at the end of the message (RFC 6455 §8.1).
   */
  #decodeTextPiece(bytes) {
    if (!this.#textDecoder) {
      this.#textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      this.#textParts = this.#takeParts().map((part) => this.#decodeText(part, true));
    }
    const parts = this.#textParts ??= [];
    parts.push(this.#decodeText(bytes, true));
    if (parts.length - this.#textBatches >= TEXT_JOIN_EVERY) {
      parts.push(parts.splice(this.#textBatches).join(""));
      this.#textBatches++;
    }
  }
  #decodeText(bytes, stream) {
    try {
      return this.#textDecoder ? this.#textDecoder.decode(bytes, { stream }) : utf8Decoder.decode(bytes);
    } catch (cause) {
      throw new WebSocketError(CloseCode.INVALID_PAYLOAD, "text message is not valid UTF-8", { cause });
    }
  }
  /** @internal FrameSink: called by the parser. */
  onFrameEnd() {
    if (this.#waitingHeader) {
      this.#waitingFrameEnded = true;
      return;
    }
    const opcode = this.#frameOpcode;
    if (isControl(opcode)) {
      const payload = concatBytes(this.#controlParts ?? []);
      this.#controlParts = null;
      this.#onControlFrame(opcode, payload);
    } else if (this.#frameFin) {
      this.#onMessageEnd();
    }
  }
  #onMessageEnd() {
    if (this.#messageDropped) this.#resetMessage();
    else if (this.#messageStreamed && this.#messageCompressed) this.#inflatePiece(null, true);
    else if (this.#messageStreamed) this.#endStream();
    else if (this.#messageCompressed) this.#inflateMessage();
    else this.#finishMessage();
  }
  // ── streamed messages (receiveStream) ──────────────────────────────────────────────────
  /** A piece of a streamed message goes out as it comes: decoded (TEXT), inflated, or copied (BINARY). */
  #streamPiece(bytes) {
    if (this.#queueFull && this.#closing) this.#messageDropped = this.#dropData = true;
    else if (this.#messageCompressed) this.#inflatePiece(bytes, false);
    else this.#emitPiece(bytes, false);
  }
  /** TEXT is decoded as it comes, validating it (1007 at the first bad byte). */
  #emitPiece(bytes, last) {
    if (this.#messageOpcode !== Opcode.TEXT) return this.#events.piece(bytes, last);
    this.#textDecoder ??= new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    this.#events.piece(this.#decodeText(bytes, !last), last);
  }
  #endStream() {
    this.#emitPiece(EMPTY, true);
    this.#messagesIn++;
    this.#resetMessage();
  }
  /**
   * Inflates a streamed compressed message as it arrives, one run at a time: what arrives
   * during a run (the parser is held, so little does) waits in #inflateInput for the next.
   * While the receive buffer is full the inflater waits for room (see #inflateOutput), so a
   * bomb inflates no faster than the application reads.
   */
  #inflatePiece(bytes, end) {
    if (bytes) (this.#inflateInput ??= []).push(bytes);
    if (end) this.#inflateEnd = true;
    if (this.#inflating) return;
    this.#parser.hold();
    this.#inflating = true;
    this.#updateReading();
    this.#runInflate();
  }
  #runInflate() {
    const input = this.#inflateInput ?? [];
    const end = this.#inflateEnd;
    this.#inflateInput = null;
    this.#inflateEnd = false;
    this.#compression.decompress(input, end, (chunk) => this.#inflateOutput(chunk)).then(
      // A run can end with the buffer full (its last output filled it): nothing more is
      // inflated, nor parsed, until there is room, or zlib would hold a slot for a reader.
      () => (this.#room ?? RESOLVED).then(() => this.#afterInflateRun(end)),
      (error) => this.#onInflateError(error)
    );
  }
  #afterInflateRun(end) {
    if (this.#discardInput || this.#state === State.CLOSED) return this.#endInflating();
    if (this.#inflateInput || this.#inflateEnd) return this.#runInflate();
    try {
      if (end) this.#endStream();
      this.#endInflating();
      this.#parser.release();
    } catch (caught) {
      this.#onParseError(caught);
    }
  }
  /** Output of a streamed message's inflater; a promise while it must wait for room. */
  #inflateOutput(chunk) {
    if (this.#messageDropped) return void 0;
    if (this.#queueFull && this.#closing) {
      this.#messageDropped = this.#dropData = true;
      return void 0;
    }
    this.#emitPiece(chunk, false);
    if (!this.#queueFull || this.#closing) return void 0;
    return this.#room = new Promise((resolve) => this.#onRoom = resolve);
  }
  #wakeInflater() {
    const wake = this.#onRoom;
    this.#onRoom = null;
    this.#room = null;
    wake?.();
  }
  /**
   * Inflates a compressed message (RFC 7692 §7.2.2). The parser holds everything behind it
   * until it is done, so messages and control frames keep their order. `maxMessageSize`
   * applies to the inflated size and is checked as the output comes, so a small bomb that
   * would inflate to gigabytes stops at the limit with 1009; TEXT is validated as it comes.
   */
  #inflateMessage() {
    const compressed = this.#takeParts();
    const { maxMessageSize } = this.#options;
    this.#messageSize = 0;
    this.#parser.hold();
    this.#inflating = true;
    this.#updateReading();
    const onOutput = (chunk) => {
      this.#messageSize += chunk.length;
      if (maxMessageSize > 0 && this.#messageSize > maxMessageSize) {
        throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message is larger than ${maxMessageSize} bytes once inflated`);
      }
      if (this.#messageOpcode === Opcode.TEXT) this.#decodeTextPiece(chunk);
      else this.#collectPart(chunk);
    };
    this.#compression.decompress(compressed, true, onOutput).then(
      () => {
        this.#endInflating();
        if (this.#discardInput || this.#state === State.CLOSED) return;
        try {
          this.#finishMessage();
          this.#parser.release();
        } catch (caught) {
          this.#onParseError(caught);
        }
      },
      (error) => this.#onInflateError(error)
    );
  }
  #onInflateError(error) {
    this.#endInflating();
    if (this.#discardInput) return;
    this.#onParseError(error instanceof WebSocketError ? error : new WebSocketError(CloseCode.INVALID_PAYLOAD, "invalid compressed data", { cause: error }));
  }
  #endInflating() {
    this.#inflating = false;
    this.#updateReading();
  }
  #finishMessage() {
    let message;
    if (this.#messageOpcode === Opcode.TEXT) {
      if (this.#textDecoder) {
        const parts = this.#textParts ?? [];
        parts.push(this.#decodeText(new Uint8Array(0), false));
        message = parts.join("");
        this.#textParts = null;
        this.#textBatches = 0;
        this.#textDecoder = null;
      } else {
        message = this.#decodeText(concatBytes(this.#messageParts ?? [], this.#messageSize, this.#transport.allocateFrame), false);
      }
    } else {
      message = this.#messageBuffer ?? ownedMessage(this.#messageParts ?? [], this.#messageSize, this.#transport.allocateMessage);
    }
    this.#resetMessage();
    this.#messagesIn++;
    this.#events.message(message);
  }
  #resetMessage() {
    this.#messageOpcode = 0;
    this.#largeFrame = 0;
    this.#takeParts();
    this.#messageBuffer = null;
    this.#messageFilled = 0;
    this.#messageSize = 0;
    this.#messageFragments = 0;
    this.#messageCompressed = false;
    this.#messageDropped = false;
    this.#messageStreamed = false;
    this.#textDecoder = null;
  }
  #onControlFrame(opcode, payload) {
    if (opcode === Opcode.PING) {
      this.#answerPing(payload);
    } else if (opcode === Opcode.PONG) {
      this.#onPong(payload);
    } else {
      this.#onCloseFrame(parseClosePayload(payload));
    }
  }
  /**
   * RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless closing. While the
   * peer does not read (our buffer is above the high-water mark), only the latest ping is
   * answered, on drain (§5.5.3 allows it), so a ping flood cannot pile up pongs in memory.
   */
  #answerPing(payload) {
    if (this.#closeSent) return;
    if (this.#transport.bufferedAmount > this.#options.highWaterMark) this.#pendingPong = payload;
    else this.#writeFrame(Opcode.PONG, payload, true);
  }
  /** A pong answers the ping with the same payload and, implicitly, every earlier one. */
  #onPong(payload) {
    const index = this.#pings?.findIndex((ping2) => sameBytes(ping2.payload, payload)) ?? -1;
    if (index < 0) return;
    const now = performance.now();
    const answered = this.#pings.splice(0, index + 1);
    this.#latency = now - answered[answered.length - 1].sentAt;
    if (DEBUG) debugLog(this.#id, `pong: round trip ${this.#latency.toFixed(1)} ms`);
    for (const ping2 of answered) ping2.resolve(now - ping2.sentAt);
  }
  #onCloseFrame(info) {
    if (DEBUG) debugLog(this.#id, `close frame received: ${info.code} ${JSON.stringify(info.reason)}`);
    this.#closeInfo = info;
    this.#parser.stop();
    this.#setError(new WebSocketError(info.code, info.reason), info);
    this.#react(() => {
      this.#state = State.CLOSING;
      if (!this.#closeSent) this.#sendClose(info.code, info.reason);
      this.#finishClosing();
    });
  }
  /**
   * A close frame or a protocol error is acted upon in the next macrotask, not in the middle
   * of the chunk that carried it: the messages that arrived just before it are delivered
   * first and the application gets its turn to answer them, as it would with a synchronous
   * 'message' event. receive() reports the end at once; close() acts at once.
   */
  #react(reaction) {
    this.#discardInput = true;
    this.#pendingReaction = reaction;
    defer(() => this.#reactNow());
  }
  #reactNow() {
    const reaction = this.#pendingReaction;
    this.#pendingReaction = null;
    if (reaction && this.#state !== State.CLOSED) reaction();
  }
  /**
   * After both close frames: RFC 6455 §7.1.1 has the server close the TCP connection first;
   * the client waits for that, bounded by the close timeout.
   */
  #finishClosing() {
    if (!this.#client) this.#transport.end();
    this.#startCloseTimer();
  }
  /**
   * @internal TransportEvents: the peer sends nothing more: finish our side too, after the
   * answer to a close frame that came with the end (§5.5.1: it is answered; an HTTP/2 peer's
   * END_STREAM arrives in the same macrotask as the DATA before it).
   */
  onTransportEnd() {
    if (this.#pendingReaction) defer(() => this.#transport.end());
    else this.#transport.end();
  }
  /** @internal TransportEvents. */
  onTransportClose(cause) {
    if (this.#state === State.CLOSED) return;
    if (DEBUG) debugLog(this.#id, `connection closed: ${this.#closeInfo.code} ${JSON.stringify(this.#closeInfo.reason)}${cause ? ` (${cause.message})` : ""}`);
    this.#state = State.CLOSED;
    this.#pendingReaction = null;
    this.#wakeInflater();
    const reason = cause ? cause.message : "connection closed without a close frame";
    this.#setError(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, reason, { cause }));
    this.#clearTimers();
    this.#compression?.close();
    for (const ping2 of this.#pings?.splice(0) ?? []) ping2.reject(this.#error);
    this.#writesEnd.abort(this.#sendError());
    this.#wakeDrainWaiters();
    this.#events.closed(this.#closeInfo);
  }
  #setError(error, info) {
    if (this.#error) return;
    this.#error = error;
    this.#events.ended(error, info);
  }
  /** RFC 6455 §7.1.7: fail the connection: send a close frame with the error's code, stop reading. */
  #fail(error) {
    if (DEBUG) debugLog(this.#id, `failed: ${error.message}`);
    this.#setError(error);
    this.#discardInput = true;
    if (this.#state === State.OPEN) this.#state = State.CLOSING;
    if (!this.#closeSent) this.#sendClose(error.code, error.code === CloseCode.INTERNAL_ERROR ? "" : error.reason);
    this.#transport.end();
    this.#startCloseTimer();
  }
  // ── sending ────────────────────────────────────────────────────────────────────────────
  /**
   * Sends go straight out when nothing is queued and nothing needs compressing; otherwise
   * they queue behind the message in progress (an async iterable, a compression).
   */
  send(message) {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    if (typeof message === "string" && this.#sendsTextDirectly(message)) {
      const frame = buildTextFrame(message, this.#maskKey(), this.#transport.allocateFrame);
      this.#write(frame);
      this.#sent(Opcode.TEXT, true, DEBUG ? payloadLength(frame) : 0);
      return this.#backpressure();
    }
    if (isAsyncIterable(message)) return this.#sendQueue().enqueue(() => this.#sendAsyncFragments(message));
    let parts;
    try {
      parts = isChunk(message) ? [encodeChunk(message)] : readFragments(message);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#sending || this.#compresses(parts)) return this.#sendQueue().enqueue(() => this.#sendParts(parts));
    return this.#afterWrites(this.#writeParts(parts));
  }
  /**
   * Writes a ready-made unmasked frame (for `broadcast`), or returns null when this link
   * cannot take one: a client (it must mask), compression, or a message in progress.
   */
  sendFrame(frame) {
    if (this.#client || this.#compression || this.#sending) return null;
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    this.#write(frame);
    this.#sent(frame[0] & 15, true, DEBUG ? payloadLength(frame) : 0);
    return this.#backpressure();
  }
  /** True while a message holds the send queue (an async iterable, a compression). */
  get #sending() {
    return this.#sequencer?.busy ?? false;
  }
  #sendQueue() {
    return this.#sequencer ??= new SendSequencer();
  }
  /** Whether new messages are accepted: open, and no close requested. */
  #canSend() {
    this.#noticeDestroyed();
    return this.#state === State.OPEN && !this.#closeSent;
  }
  /** Whether messages already accepted may still go out: until the close frame is sent. */
  #canWrite() {
    this.#noticeDestroyed();
    return this.#state !== State.CLOSED && !this.#closeSent;
  }
  /** A socket destroyed a moment ago has not told us yet: then a send would vanish silently. */
  #noticeDestroyed() {
    if (this.#state !== State.CLOSED && this.#transport.destroyed) this.onTransportClose(new Error("the socket was destroyed"));
  }
  /** A string that goes out now, uncompressed: short enough to encode straight into its frame. */
  #sendsTextDirectly(text) {
    const maxBytes = text.length * 3;
    return maxBytes <= COPY_THRESHOLD && !this.#sending && (this.#compression === null || maxBytes < this.#compression.threshold);
  }
  /** Compression is agreed and the message is not below the threshold (in bytes). */
  #compresses(parts) {
    return this.#compression !== null && byteLength(parts.map(([bytes]) => bytes)) >= this.#compression.threshold;
  }
  async #sendParts(parts) {
    if (!this.#canWrite()) throw this.#sendError();
    if (this.#compresses(parts)) await this.#sendCompressed(parts);
    else await this.#afterWrites(this.#writeParts(parts));
  }
  /** One frame per chunk, the last one with FIN (RFC 6455 §5.4); settles once every payload the transport holds is written. */
  #writeParts(parts) {
    let written = null;
    parts.forEach(([bytes, opcode], index) => {
      const write = this.#writeFrame(index === 0 ? opcode : Opcode.CONTINUATION, bytes, index === parts.length - 1);
      if (write) (written ??= []).push(write);
    });
    return written ? Promise.all(written).then(ignoreValue) : null;
  }
  /** One compressed frame per chunk, RSV1 on the first (RFC 7692 §6.1), one deflate stream for the message. */
  async #sendCompressed(parts) {
    const written = [];
    for (let index = 0; index < parts.length; index++) {
      const [bytes, opcode] = parts[index];
      const last = index === parts.length - 1;
      const payload = await this.#compress(bytes, last);
      if (!this.#canWrite()) throw this.#sendError();
      const write = this.#writeFrame(index === 0 ? opcode : Opcode.CONTINUATION, payload, last, index === 0);
      write?.catch(ignoreValue);
      written.push(write);
    }
    await Promise.all(written);
    await this.#backpressure();
  }
  /**
   * Each chunk goes out as it arrives; an empty final frame carries FIN. The next chunk is
   * asked for once the previous one is written (the iterable may reuse its buffer). If the
   * iterable throws mid-message, the message cannot be finished, so the connection closes
   * with 1011. If the connection can no longer write while the iterable is waiting, send()
   * rejects at once and the iterator's return() is called, so its `finally` runs.
   */
  async #sendAsyncFragments(chunks) {
    const compression = this.#compression;
    let opcode = 0;
    try {
      if (!this.#canWrite()) throw this.#sendError();
      await forEachChunk(chunks, this.#writesEnd, async (chunk) => {
        const [bytes, chunkOpcode] = encodeChunk(chunk);
        if (opcode !== 0 && chunkOpcode !== opcode) throw new TypeError("a fragmented message mixes strings and bytes");
        const payload = compression ? await this.#compress(bytes, false) : bytes;
        if (!this.#canWrite()) throw this.#sendError();
        const write = this.#writeFrame(opcode === 0 ? chunkOpcode : Opcode.CONTINUATION, payload, false, compression !== null && opcode === 0);
        opcode = chunkOpcode;
        await this.#afterWrites(write);
      });
    } catch (error) {
      if (opcode !== 0 && this.#canWrite()) this.#fail(new WebSocketError(CloseCode.INTERNAL_ERROR, "", { cause: error }));
      throw error;
    }
    const tail = compression ? await this.#compress(new Uint8Array(0), true) : new Uint8Array(0);
    if (!this.#canWrite()) throw this.#sendError();
    await this.#afterWrites(this.#writeFrame(opcode === 0 ? Opcode.BINARY : Opcode.CONTINUATION, tail, true, compression !== null && opcode === 0));
  }
  /** Compresses a piece; a compression cut short because the connection ended fails as the connection's end, not as zlib's. */
  async #compress(bytes, final) {
    try {
      return await this.#compression.compress(bytes, final);
    } catch (error) {
      throw this.#canWrite() ? error : this.#sendError();
    }
  }
  #backpressure() {
    if (this.#transport.bufferedAmount <= this.#options.highWaterMark) return RESOLVED;
    return new Promise(
      (resolve, reject) => (this.#drainWaiters ??= []).push(() => this.#state === State.CLOSED ? reject(this.#sendError()) : resolve())
    );
  }
  /**
   * @internal TransportEvents. Each write that reaches the OS lets the waiting sends go as
   * soon as the buffer is back at the high-water mark — not only once it is empty, which
   * would stall a stream of large messages at every one.
   */
  onTransportWritten() {
    this.#noticeDestroyed();
    if (this.#state === State.CLOSED || this.#transport.bufferedAmount > this.#options.highWaterMark) return;
    this.#flushPendingPong();
    this.#wakeDrainWaiters();
  }
  /** The latest ping that came while the peer was not reading gets its answer now (see #answerPing). */
  #flushPendingPong() {
    const pong2 = this.#pendingPong;
    this.#pendingPong = null;
    if (pong2 && this.#canSend()) this.#writeFrame(Opcode.PONG, pong2, true);
  }
  /** The sends waiting for the buffer to drain: they resolve, or reject once the connection is gone. */
  #wakeDrainWaiters() {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = null;
    if (waiters) for (const wake of waiters) wake();
  }
  #sendError() {
    return this.#error ?? new WebSocketError(this.#closeRequested?.code ?? CloseCode.NORMAL_CLOSURE, "the connection is closing");
  }
  /**
   * Writes one frame; a client masks it with a fresh key (RFC 6455 §5.3), never in the
   * caller's buffer. Returns null when the payload was copied, or, when the transport holds
   * the payload itself, a promise that settles once it is written: the caller's buffer is
   * only free for reuse then.
   */
  #writeFrame(opcode, payload, fin, rsv1 = false) {
    const maskKey = this.#maskKey();
    const { allocateFrame } = this.#transport;
    if (payload.length <= COPY_THRESHOLD) {
      this.#sent(opcode, fin, payload.length);
      this.#write(buildFrame(fin, rsv1, opcode, payload, maskKey, allocateFrame));
      return null;
    }
    const header = allocateFrame(frameHeaderSize(payload.length, maskKey !== null));
    writeFrameHeader(header, fin, rsv1, opcode, payload.length, maskKey);
    this.#sent(opcode, fin, payload.length);
    this.#write(header, true);
    if (!maskKey) {
      return new Promise((resolve, reject) => this.#write(payload, false, (error) => error ? reject(this.#sendError()) : resolve()));
    }
    for (let at = 0; at < payload.length; at += MASKED_PIECE) {
      const source = payload.subarray(at, at + MASKED_PIECE);
      const piece = allocateFrame(source.length);
      copyMasked(source, piece, 0, maskKey);
      this.#write(piece, at + MASKED_PIECE < payload.length);
    }
    return null;
  }
  /** Counts a message whose last frame goes out; NODE_DEBUG=websockets logs every frame (never its payload). */
  #sent(opcode, fin, length) {
    if (fin && !isControl(opcode)) this.#messagesOut++;
    if (DEBUG) debugLog(this.#id, `\u2192 ${describeFrame(opcode, fin, length)}`);
  }
  /** Resolves once `written` (the payloads the transport holds) is out and the buffer is at the high-water mark. */
  #afterWrites(written) {
    return written ? written.then(() => this.#backpressure()) : this.#backpressure();
  }
  /** A fresh masking key for each frame a client sends (RFC 6455 §5.3); none on a server. */
  #maskKey() {
    return this.#client ? randomBytes(4) : null;
  }
  // ── control frames ─────────────────────────────────────────────────────────────────────
  ping(data) {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    let payload;
    try {
      payload = data === void 0 ? this.#nextPingPayload() : controlPayload(data);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      (this.#pings ??= []).push({ payload, sentAt: performance.now(), resolve, reject });
      this.#writeFrame(Opcode.PING, payload, true);
    });
  }
  pong(data) {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    try {
      this.#writeFrame(Opcode.PONG, data === void 0 ? EMPTY : controlPayload(data), true);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#backpressure();
  }
  #nextPingPayload() {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, ++this.#pingCounter);
    return payload;
  }
  /**
   * Keepalive: ping every `pingInterval`; no pong within `pingTimeout` fails with 1011. The
   * one timer is either the next ping or, while a keepalive ping is out, the pong deadline,
   * which only runs while we read (see #updateReading). Any frame that arrives after the ping
   * also shows the peer alive: a peer whose own receive queue is full cannot read our ping,
   * but sends heartbeats (#startHeartbeat) meanwhile.
   */
  #scheduleKeepalive() {
    const { pingInterval } = this.#options;
    if (pingInterval > 0) this.#keepaliveTimer = startTimer(pingInterval, () => this.#sendKeepalivePing());
  }
  #sendKeepalivePing() {
    this.#keepaliveTimer = null;
    if (!this.#canSend()) return;
    const round = ++this.#keepaliveRound;
    this.#awaitingPong = true;
    this.#heardSincePing = false;
    this.#armPongDeadline();
    this.ping().then(() => {
      if (round === this.#keepaliveRound) this.#nextKeepaliveRound();
    }, ignoreValue);
  }
  #nextKeepaliveRound() {
    this.#suspendPongDeadline();
    this.#awaitingPong = false;
    this.#keepaliveRound++;
    this.#scheduleKeepalive();
  }
  #armPongDeadline() {
    const { pingTimeout } = this.#options;
    if (this.#awaitingPong && pingTimeout > 0 && !this.#readingPaused && !this.#keepaliveTimer) {
      this.#keepaliveTimer = startTimer(pingTimeout, () => this.#onKeepaliveTimeout());
    }
  }
  #suspendPongDeadline() {
    if (!this.#awaitingPong || !this.#keepaliveTimer) return;
    clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = null;
  }
  #onKeepaliveTimeout() {
    this.#keepaliveTimer = null;
    if (this.#state !== State.OPEN) return;
    if (this.#heardSincePing) return this.#nextKeepaliveRound();
    this.#fail(new WebSocketError(CloseCode.INTERNAL_ERROR, "keepalive ping timeout"));
    this.#transport.destroy();
  }
  // ── closing ────────────────────────────────────────────────────────────────────────────
  /**
   * New sends are refused at once; messages already accepted (queued behind a compression or
   * an async iterable) still go out before the close frame. The close timeout bounds it all.
   */
  close(code, reason) {
    this.#reactNow();
    if (!this.#canSend()) return;
    this.#state = State.CLOSING;
    this.#closeRequested = { code, reason };
    this.#startCloseTimer();
    this.#updateReading();
    const sendClose = () => {
      if (this.#canWrite()) this.#sendClose(code, reason);
    };
    if (this.#sending) this.#sendQueue().enqueue(async () => sendClose()).catch(() => {
    });
    else sendClose();
  }
  #sendClose(code, reason) {
    if (DEBUG) debugLog(this.#id, `close frame sent: ${code} ${JSON.stringify(reason)}`);
    this.#closeSent = true;
    this.#writesEnd.abort(this.#sendError());
    this.#updateReading();
    this.#writeFrame(Opcode.CLOSE, encodeClosePayload(code, truncateUtf8(reason, 123)), true);
  }
  #startCloseTimer() {
    if (this.#closeTimer || this.#state === State.CLOSED) return;
    const { closeTimeout } = this.#options;
    if (closeTimeout > 0) this.#closeTimer = startTimer(closeTimeout, () => this.#transport.destroy());
  }
  #clearTimers() {
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    if (this.#keepaliveTimer) clearTimeout(this.#keepaliveTimer);
    this.#closeTimer = this.#keepaliveTimer = null;
    this.#awaitingPong = false;
    this.#stopHeartbeat();
  }
}
class SendSequencer {
  #tail = null;
  #pending = 0;
  get busy() {
    return this.#tail !== null;
  }
  enqueue(task) {
    this.#pending++;
    const done = (this.#tail ?? RESOLVED).then(task);
    const release = () => {
      if (--this.#pending === 0) this.#tail = null;
    };
    this.#tail = done.then(release, release);
    return done;
  }
}
function isChunk(value) {
  return typeof value === "string" || isDataView(value);
}
class StepAbort {
  #reject = null;
  #ended = false;
  #error;
  race(step) {
    if (this.#ended) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#reject = reject;
      step.then(resolve, reject).finally(() => {
        if (this.#reject === reject) this.#reject = null;
      });
    });
  }
  abort(error) {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#reject?.(error);
    this.#reject = null;
  }
}
async function forEachChunk(chunks, end, take) {
  const iterator = chunks[Symbol.asyncIterator]();
  let open2 = true;
  try {
    for (; ; ) {
      const next = iterator.next().catch((error) => {
        open2 = false;
        throw error;
      });
      const result = await end.race(next);
      if (result.done) {
        open2 = false;
        return;
      }
      await take(result.value);
    }
  } catch (error) {
    if (open2) closeIterator(iterator);
    throw error;
  }
}
function closeIterator(iterator) {
  try {
    Promise.resolve(iterator.return?.()).catch(ignoreValue);
  } catch {
  }
}
function isAsyncIterable(value) {
  return value !== null && typeof value === "object" && Symbol.asyncIterator in value;
}
function encodeChunk(chunk) {
  if (typeof chunk === "string") return [textEncoder.encode(chunk), Opcode.TEXT];
  if (isDataView(chunk)) return [toBytes(chunk), Opcode.BINARY];
  throw new TypeError("send() takes a string, bytes, or an iterable or async iterable of them");
}
function readFragments(chunks) {
  if (chunks === null || typeof chunks !== "object" || !(Symbol.iterator in chunks)) {
    throw new TypeError("send() takes a string, bytes, or an iterable or async iterable of them");
  }
  const parts = Array.from(chunks, encodeChunk);
  const [first] = parts;
  if (!first) return [[new Uint8Array(0), Opcode.BINARY]];
  if (parts.some(([, opcode]) => opcode !== first[1])) throw new TypeError("a fragmented message mixes strings and bytes");
  return parts;
}
function controlPayload(data) {
  const [bytes] = encodeChunk(data);
  if (bytes.length > 125) throw new RangeError(`a ping or pong payload is at most 125 bytes, got ${bytes.length}`);
  return bytes.slice();
}
function receive(ws, options) {
  return ws.receive(options);
}
function send(ws, message) {
  return ws.send(message);
}
function ping(ws, data) {
  return ws.ping(data);
}
function pong(ws, data) {
  return ws.pong(data);
}
function close(ws, code, reason) {
  return ws.close(code, reason);
}
async function broadcast(sockets, message, options = {}) {
  const { maxBuffered = 0, onLimit = "skip" } = options;
  if (typeof maxBuffered !== "number" || !(maxBuffered >= 0)) throw new RangeError(`maxBuffered must be a number \u2265 0, got ${String(maxBuffered)}`);
  if (onLimit !== "skip" && onLimit !== "close") throw new TypeError(`onLimit must be 'skip' or 'close', got ${String(onLimit)}`);
  const [payload, opcode] = encodeChunk(message);
  let frame = null;
  const pending = [];
  const skipped = [];
  const closed = [];
  for (const ws of sockets) {
    const link = linkOf(ws);
    if (!link.accepting) continue;
    if (maxBuffered > 0 && ws.bufferedAmount > maxBuffered) {
      if (onLimit === "close") {
        ws.close(CloseCode.TRY_AGAIN_LATER, "too slow: messages were waiting").catch(ignoreValue);
        closed.push(ws);
      } else skipped.push(ws);
      continue;
    }
    const sent = link instanceof ProtocolLink ? link.sendFrame(frame ??= encodeFrame({ opcode, payload })) : null;
    pending.push((sent ?? ws.send(message)).catch(ignoreValue));
  }
  if (maxBuffered === 0) await Promise.all(pending);
  return { sent: pending.length, skipped, closed };
}
class MemoryTransport {
  allocateFrame = allocateZeroed;
  allocateMessage = allocateZeroed;
  peer;
  #events = null;
  /** What the peer wrote that this end has not read yet; a FIN is `null`. */
  #inbox = [];
  #delivering = false;
  #paused = false;
  /** Bytes this end wrote that the peer has not read yet. */
  #buffered = 0;
  #ended = false;
  #peerEnded = false;
  #destroyed = false;
  start(events) {
    this.#events = events;
    this.#scheduleDelivery();
  }
  get bufferedAmount() {
    return this.#buffered;
  }
  get destroyed() {
    return this.#destroyed;
  }
  /** The bytes are copied: the writer's buffer is free at once, and the reader owns what it gets. */
  write(bytes, _more, written) {
    if (this.#destroyed || this.#ended) return written?.(new Error("the connection is closed"));
    this.#buffered += bytes.length;
    this.peer.#receive(bytes.slice());
    written?.();
  }
  pause() {
    this.#paused = true;
  }
  resume() {
    this.#paused = false;
    this.#scheduleDelivery();
  }
  end() {
    if (this.#ended || this.#destroyed) return;
    this.#ended = true;
    this.peer.#receive(null);
    this.#closeIfDone();
  }
  destroy() {
    this.#close();
    this.peer.#close();
  }
  #receive(bytes) {
    this.#inbox.push(bytes);
    this.#scheduleDelivery();
  }
  #scheduleDelivery() {
    if (this.#delivering || this.#paused || !this.#events || this.#inbox.length === 0) return;
    this.#delivering = true;
    defer(() => this.#deliver());
  }
  /** Hands the inbox to the protocol, chunk by chunk, until it pauses. */
  #deliver() {
    this.#delivering = false;
    const events = this.#events;
    while (!this.#paused && !this.#destroyed && this.#inbox.length > 0) {
      const bytes = this.#inbox.shift();
      if (bytes === null) {
        this.#peerEnded = true;
        events.onTransportEnd();
        this.#closeIfDone();
        continue;
      }
      this.peer.#buffered -= bytes.length;
      events.onTransportData(bytes);
      this.peer.#events?.onTransportWritten();
    }
  }
  #closeIfDone() {
    if (this.#ended && this.#peerEnded) this.destroy();
  }
  #close() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#inbox.length = 0;
    this.#buffered = 0;
    defer(() => this.#events?.onTransportClose());
  }
}
const nodeProcess = globalThis.process;
const isNode = typeof nodeProcess?.versions?.node === "string";
const DEBUG = debugEnabled("websockets", nodeProcess?.env?.["NODE_DEBUG"] ?? "");
function debugEnabled(section, list) {
  return list.split(/[\s,]+/).some((name) => {
    if (name === "") return false;
    const pattern = name.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
    return new RegExp(`^${pattern}$`, "i").test(section);
  });
}
function loggedUrl(url) {
  return url.origin + url.pathname;
}
function debugLog(id, text) {
  console.error(`WEBSOCKETS ${nodeProcess?.pid ?? ""}: [${id}] ${text}`);
}
let nodeModules;
function loadNode() {
  return nodeModules ??= loadBuiltins();
}
function loadBuiltins() {
  const process = nodeProcess;
  const load = process?.getBuiltinModule?.bind(process);
  if (!process || !load) throw new Error("websockets.ts needs Node.js 20.16 or newer (process.getBuiltinModule)");
  const crypto = load("crypto");
  const { Buffer } = load("buffer");
  return {
    http: load("http"),
    https: load("https"),
    net: load("net"),
    tls: load("tls"),
    zlib: load("zlib"),
    dns: load("dns"),
    fs: load("fs"),
    http2: () => load("http2"),
    sha1Base64: (text) => crypto.createHash("sha1").update(text).digest("base64"),
    allocateFrame: (size) => Buffer.allocUnsafe(size),
    allocateMessage: (size) => new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size),
    nextTick: (callback) => process.nextTick(callback)
  };
}
class Limiter {
  #limit;
  #running = 0;
  #waiting = [];
  constructor(limit) {
    this.#limit = limit;
  }
  /** Whether a task is waiting for a slot. */
  get contended() {
    return this.#waiting.length > 0;
  }
  async run(task) {
    const turn = { held: false, wake: null, ended: false };
    await this.#acquire(turn);
    try {
      return await task(turn);
    } finally {
      turn.ended = true;
      this.#release(turn);
    }
  }
  /** Frees the slot while the task waits for `until`, and resolves once it has one again (unless it ended meanwhile). */
  async lendTurn(turn, until) {
    this.#release(turn);
    await until;
    if (!turn.ended) await this.#acquire(turn);
  }
  /** Lets the first waiting task run, and resolves once `turn` has a slot again. */
  yieldTurn(turn) {
    if (!turn.held || !this.contended) return RESOLVED;
    this.#release(turn);
    return this.#acquire(turn);
  }
  #acquire(turn) {
    if (this.#running < this.#limit) {
      this.#running++;
      turn.held = true;
      return RESOLVED;
    }
    return new Promise((resolve) => {
      turn.wake = () => {
        turn.wake = null;
        this.#running++;
        turn.held = true;
        resolve();
      };
      this.#waiting.push(turn.wake);
    });
  }
  /** Frees the slot, or the place in the line of a task that ends while waiting to resume. */
  #release(turn) {
    if (turn.wake) {
      this.#waiting.splice(this.#waiting.indexOf(turn.wake), 1);
      turn.wake = null;
    }
    if (!turn.held) return;
    turn.held = false;
    this.#running--;
    this.#waiting.shift()?.();
  }
}
const zlibLimiter = new Limiter(10);
const INFLATE_SLICE = 1024 * KiB;
const DEFLATE_TAIL = Uint8Array.of(0, 0, 255, 255);
function endsWithDeflateTail(bytes) {
  const n = bytes.length;
  return n >= 4 && bytes[n - 4] === 0 && bytes[n - 3] === 0 && bytes[n - 2] === 255 && bytes[n - 1] === 255;
}
function flushZlib(stream, input, flush, onOutput) {
  return new Promise((resolve, reject) => {
    let failed = false;
    let flushed = false;
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("error", fail);
    };
    const fail = (error) => {
      if (failed) return;
      failed = true;
      cleanup();
      stream.close();
      reject(error);
    };
    const finishIfDrained = () => {
      if (!flushed || failed || stream.readableLength > 0) return;
      cleanup();
      resolve();
    };
    const onData = (chunk) => {
      try {
        onOutput(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (error) {
        return fail(error);
      }
      finishIfDrained();
    };
    stream.on("data", onData);
    stream.on("error", fail);
    for (const part of input) stream.write(part);
    stream.flush(flush, (error) => {
      if (error) return fail(error);
      flushed = true;
      finishIfDrained();
    });
  });
}
class ZlibCompression {
  threshold;
  #zlib;
  #deflateOptions;
  #inflateOptions;
  /** Our side's no_context_takeover: a fresh deflate context for each message. */
  #resetDeflater;
  /** The peer's no_context_takeover: nothing to remember between its messages. */
  #resetInflater;
  #deflater = null;
  #inflater = null;
  constructor(zlib, agreed, client, settings) {
    this.#zlib = zlib;
    this.threshold = settings.threshold ?? 1024;
    this.#deflateOptions = {
      windowBits: client ? agreed.clientMaxWindowBits : agreed.serverMaxWindowBits,
      level: settings.level ?? zlib.constants.Z_DEFAULT_COMPRESSION,
      memLevel: settings.memLevel ?? 8
    };
    this.#inflateOptions = { windowBits: client ? agreed.serverMaxWindowBits : agreed.clientMaxWindowBits };
    this.#resetDeflater = client ? agreed.clientNoContextTakeover : agreed.serverNoContextTakeover;
    this.#resetInflater = client ? agreed.serverNoContextTakeover : agreed.clientNoContextTakeover;
  }
  compress(data, final) {
    return zlibLimiter.run(async () => {
      const deflater = this.#deflater ??= quiet(this.#zlib.createDeflateRaw(this.#deflateOptions));
      const output = [];
      try {
        await flushZlib(deflater, [data], this.#zlib.constants.Z_SYNC_FLUSH, (chunk) => output.push(chunk));
      } catch (error) {
        this.#deflater = null;
        throw error;
      }
      let bytes = concatBytes(output);
      if (final) {
        if (endsWithDeflateTail(bytes)) bytes = bytes.subarray(0, bytes.length - 4);
        if (this.#resetDeflater) this.#closeDeflater();
      }
      return bytes;
    });
  }
  /**
   * Inflates a message. A message that inflates a lot (a small frame can hold 16 MiB of
   * zeros, about 60 ms of zlib) pauses the stream every INFLATE_SLICE of output while other
   * connections wait for zlib, and lets them go first: one peer's bombs cannot hold zlib for
   * everyone (zlib honours the pause: it stops once its readable buffer is full).
   */
  decompress(parts, end, onOutput) {
    return zlibLimiter.run(async (turn) => {
      const inflater = this.#inflater ??= quiet(this.#zlib.createInflateRaw(this.#inflateOptions));
      let sliceOutput = 0;
      const output = (chunk) => {
        const room = onOutput(chunk);
        if (room) {
          inflater.pause();
          void zlibLimiter.lendTurn(turn, room).then(() => inflater.resume());
          return;
        }
        sliceOutput += chunk.length;
        if (sliceOutput < INFLATE_SLICE || !zlibLimiter.contended) return;
        sliceOutput = 0;
        inflater.pause();
        void zlibLimiter.yieldTurn(turn).then(() => inflater.resume());
      };
      if (!inflater.readableEnded) {
        try {
          await flushZlib(inflater, end ? [...parts, DEFLATE_TAIL] : parts, this.#zlib.constants.Z_SYNC_FLUSH, output);
        } catch (error) {
          this.#inflater = null;
          throw error;
        }
        inflater.resume();
      }
      if (end && (inflater.readableEnded || this.#resetInflater)) this.#closeInflater();
    });
  }
  close() {
    this.#closeDeflater();
    this.#closeInflater();
  }
  #closeDeflater() {
    this.#deflater?.close();
    this.#deflater = null;
  }
  #closeInflater() {
    this.#inflater?.close();
    this.#inflater = null;
  }
}
function quiet(stream) {
  stream.on("error", () => {
  });
  return stream;
}
const Writes = { NONE: 0, ONE: 1, CORKED: 2 };
const TRANSPORT = /* @__PURE__ */ Symbol("websockets.ts transport");
function onSocketData(chunk) {
  this[TRANSPORT].events.onTransportData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
}
function onSocketEnd() {
  this[TRANSPORT].events.onTransportEnd();
}
function onSocketError(error) {
  this[TRANSPORT].failure = error;
}
function onSocketClose() {
  const transport = this[TRANSPORT];
  transport.events.onTransportClose(transport.failure);
}
let wroteThisTick = [];
function endTick() {
  const transports = wroteThisTick;
  wroteThisTick = [];
  for (const transport of transports) transport.endTick();
}
class SocketTransport {
  #socket;
  #node;
  #afterWrite = () => this.events.onTransportWritten();
  #writes = Writes.NONE;
  /** Bytes that came with the handshake, until `start` hands them over. */
  #head;
  events;
  failure;
  constructor(socket, head, node) {
    this.#socket = Object.assign(socket, { [TRANSPORT]: this });
    this.#head = head;
    this.#node = node;
  }
  start(events) {
    const socket = this.#socket;
    const head = this.#head;
    this.#head = null;
    this.events = events;
    socket.setNoDelay?.(true);
    socket.on("data", onSocketData);
    socket.on("end", onSocketEnd);
    socket.on("error", onSocketError);
    socket.on("close", onSocketClose);
    if (head && head.length > 0) onSocketData.call(socket, head);
    if (socket.destroyed) events.onTransportClose(new Error("socket closed during the handshake"));
  }
  write(bytes, more = false, written) {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return written?.(new Error("the socket is closed"));
    if (this.#writes === Writes.NONE) {
      this.#writes = Writes.ONE;
      if (wroteThisTick.push(this) === 1) this.#node.nextTick(endTick);
    } else if (this.#writes === Writes.ONE) {
      this.#cork();
    }
    if (more && this.#writes === Writes.ONE) this.#cork();
    socket.write(bytes, written ? (error) => this.#afterOwnWrite(written, error) : this.#afterWrite);
  }
  /**
   * A write whose caller waits for it. A socket destroyed meanwhile may still report success
   * (Node 20 does, for writes that were corked together): bytes it did not hand on are lost.
   */
  #afterOwnWrite(written, error) {
    written(error ?? (this.#socket.destroyed ? new Error("the socket was destroyed before the write completed") : null));
    this.#afterWrite();
  }
  #cork() {
    this.#writes = Writes.CORKED;
    this.#socket.cork();
  }
  /** @internal Called once at the end of a tick in which this transport wrote. */
  endTick() {
    if (this.#writes === Writes.CORKED) this.#socket.uncork();
    this.#writes = Writes.NONE;
  }
  get allocateFrame() {
    return this.#node.allocateFrame;
  }
  get allocateMessage() {
    return this.#node.allocateMessage;
  }
  get bufferedAmount() {
    return this.#socket.writableLength;
  }
  pause() {
    this.#socket.pause();
  }
  resume() {
    this.#socket.resume();
  }
  end() {
    if (!this.#socket.writableEnded) this.#socket.end();
  }
  destroy() {
    this.#socket.destroy();
  }
  get destroyed() {
    return this.#socket.destroyed;
  }
}
class Http2StreamTransport extends SocketTransport {
  #stream;
  #cancel;
  constructor(stream, node) {
    super(stream, EMPTY, node);
    this.#stream = stream;
    this.#cancel = node.http2().constants.NGHTTP2_CANCEL;
  }
  destroy() {
    cancelStream(this.#stream, this.#cancel);
  }
}
function cancelStream(stream, cancel) {
  stream.resume();
  if (!stream.destroyed) stream.close(cancel);
}
function lowerCaseHeaders(raw) {
  const headers = {};
  for (const name in raw) {
    const value = raw[name];
    if (value !== void 0) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}
const PROXY_PORTS = { "http:": 80, "https:": 443, "socks5:": 1080, "socks5h:": 1080 };
const MAX_PROXY_ANSWER = 16 * KiB;
async function dial(node, target, proxy, tls, proxyTls, signal) {
  const stream = target.socketPath !== null ? await connected(node.net.connect({ path: target.socketPath }), "connect", signal) : proxy ? await dialProxy(node, target, proxy, proxyTls, signal) : await connected(node.net.connect({ host: target.host, port: target.port }), "connect", signal);
  return target.secure ? startTls(node, stream, target.host, tls, signal) : stream;
}
function startTls(node, socket, host, tls, signal) {
  const servername = node.net.isIP(host) ? void 0 : host;
  return connected(node.tls.connect({ servername, ...tls, socket }), "secureConnect", signal, socket);
}
function connected(socket, event, signal, under) {
  return new Promise((resolve, reject) => {
    const fail = (error) => {
      cleanup();
      socket.destroy();
      under?.destroy();
      reject(error);
    };
    const onError = (error) => fail(error);
    const onClose = () => fail(new Error("the connection closed"));
    const onAbort = () => fail(signal.reason);
    const onDone = () => {
      cleanup();
      resolve(socket);
    };
    const cleanup = () => {
      socket.off(event, onDone);
      socket.off("error", onError);
      socket.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
    };
    if (signal.aborted) return fail(signal.reason);
    socket.on(event, onDone);
    socket.on("error", onError);
    socket.on("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
function readAnswer(socket, signal, what, complete, limit = MAX_PROXY_ANSWER) {
  return new Promise((resolve, reject) => {
    let bytes = new Uint8Array(0);
    const finish = (error, answer) => {
      socket.pause();
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
      if (error === null) return resolve(answer);
      socket.destroy();
      reject(error);
    };
    const onData = (chunk) => {
      bytes = concatBytes([bytes, chunk]);
      let size;
      try {
        size = complete(bytes);
      } catch (error) {
        return finish(error);
      }
      if (size > 0) {
        finish(null, bytes.subarray(0, size));
        if (size < bytes.length) socket.unshift(bytes.subarray(size));
        return;
      }
      if (bytes.length > limit) finish(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what}: answer longer than ${limit} bytes`));
    };
    const onError = (cause) => finish(cause);
    const onClose = () => finish(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what}: the connection closed before the answer`));
    const onAbort = () => finish(signal.reason);
    if (signal.aborted) return onAbort();
    if (socket.destroyed) return onClose();
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.resume();
  });
}
function authority(host, port) {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
function credentials(url, what) {
  if (!url.username && !url.password) return null;
  try {
    return [decodeURIComponent(url.username), decodeURIComponent(url.password)];
  } catch {
    throw new TypeError(`the user name or password in ${what} is not valid percent-encoding (write % as %25)`);
  }
}
async function dialProxy(node, target, proxy, proxyTls, signal) {
  const { url } = proxy;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port) || PROXY_PORTS[url.protocol];
  let socket;
  try {
    socket = await connected(node.net.connect({ host, port }), "connect", signal);
    if (url.protocol === "https:") socket = await startTls(node, socket, host, proxyTls, signal);
  } catch (cause) {
    if (signal.aborted) throw cause;
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `could not reach the proxy ${proxy.shown}: ${cause.message}`, { cause });
  }
  const quiet2 = () => {
  };
  socket.on("error", quiet2);
  try {
    return url.protocol === "http:" || url.protocol === "https:" ? await httpTunnel(socket, target, proxy, signal) : await socks5Tunnel(node, socket, target, proxy, signal);
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    socket.off("error", quiet2);
  }
}
async function httpTunnel(socket, target, proxy, signal) {
  const to = authority(target.host, target.port);
  const { login } = proxy;
  const lines = [`CONNECT ${to} HTTP/1.1`, `Host: ${to}`];
  if (login) lines.push(`Proxy-Authorization: Basic ${base64(textEncoder.encode(`${login[0]}:${login[1]}`))}`);
  socket.write(`${lines.join("\r\n")}\r
\r
`);
  const what = `the proxy ${proxy.shown}`;
  const answer = await readAnswer(socket, signal, what, (bytes) => {
    const end = indexOfBlankLine(bytes);
    return end < 0 ? 0 : end + 4;
  });
  const [statusLine = "", ...headerLines] = latin1(answer).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  if (status >= 200 && status < 300) return socket;
  socket.destroy();
  const headers = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const said = status ? `HTTP ${statusLine.slice(9).trim()}` : `not HTTP: ${JSON.stringify(statusLine.slice(0, 40))}`;
  throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} refused the tunnel to ${to}: ${said}`, { status, headers });
}
function indexOfBlankLine(bytes) {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}
const SOCKS5_REPLIES = [
  "succeeded",
  "general SOCKS server failure",
  "connection not allowed by ruleset",
  "network unreachable",
  "host unreachable",
  "connection refused",
  "TTL expired",
  "command not supported",
  "address type not supported"
];
async function socks5Tunnel(node, socket, target, proxy, signal) {
  const what = `the SOCKS5 proxy ${proxy.shown}`;
  const fail = (reason) => {
    socket.destroy();
    return new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} ${reason}`);
  };
  const { login } = proxy;
  socket.write(Uint8Array.of(5, 1, login ? 2 : 0));
  const choice = await readAnswer(socket, signal, what, (bytes) => bytes.length >= 2 ? 2 : 0);
  if (choice[0] !== 5) throw fail("is not a SOCKS5 server");
  if (choice[1] !== (login ? 2 : 0)) throw fail(login ? "does not accept username/password authentication" : "requires authentication (give the user name and password in the proxy URL)");
  if (login) {
    const [user, password] = login.map((part) => textEncoder.encode(part));
    if (user.length === 0 || user.length > 255 || password.length > 255) throw fail("needs a user name of 1 to 255 bytes and a password of at most 255");
    socket.write(concatBytes([Uint8Array.of(1, user.length), user, Uint8Array.of(password.length), password]));
    const verdict = await readAnswer(socket, signal, what, (bytes) => bytes.length >= 2 ? 2 : 0);
    if (verdict[0] !== 1 || verdict[1] !== 0) throw fail("refused the user name and password");
  }
  const address = proxy.url.protocol === "socks5h:" ? target.host : await resolveHost(node, target.host, signal);
  socket.write(concatBytes([Uint8Array.of(5, 1, 0), socksAddress(node, address), Uint8Array.of(target.port >> 8, target.port & 255)]));
  const reply = await readAnswer(socket, signal, what, (bytes) => socksReplyLength(bytes, what));
  if (reply[1] !== 0) throw fail(`could not connect to ${authority(target.host, target.port)}: ${SOCKS5_REPLIES[reply[1]] ?? `reply code ${reply[1]}`}`);
  return socket;
}
function socksAddress(node, host) {
  const kind = node.net.isIP(host);
  if (kind === 4) return Uint8Array.of(1, ...host.split(".").map(Number));
  if (kind === 6) {
    const value = ipValue(host);
    const bytes = new Uint8Array(17);
    bytes[0] = 4;
    for (let i = 0; i < 16; i++) bytes[16 - i] = Number(value >> BigInt(8 * i) & 0xffn);
    return bytes;
  }
  const name = textEncoder.encode(host);
  if (name.length > 255) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, "a host name over 255 bytes cannot go through SOCKS5");
  return concatBytes([Uint8Array.of(3, name.length), name]);
}
function socksReplyLength(bytes, what) {
  if (bytes.length < 2) return 0;
  if (bytes[0] !== 5) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} sent a malformed reply`);
  if (bytes[1] !== 0) return bytes.length;
  if (bytes.length < 5) return 0;
  const kind = bytes[3];
  const size = 6 + (kind === 1 ? 4 : kind === 4 ? 16 : kind === 3 ? 1 + bytes[4] : 0);
  if (size === 6) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} sent a malformed reply`);
  return bytes.length >= size ? size : 0;
}
function resolveHost(node, host, signal) {
  if (node.net.isIP(host)) return Promise.resolve(host);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    node.dns.lookup(host, {}, (error, address) => {
      signal.removeEventListener("abort", onAbort);
      if (error) reject(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `could not resolve ${host}: ${error.message}`, { cause: error }));
      else resolve(address);
    });
  });
}
function chooseProxy(option, target) {
  if (option === false || target.socketPath !== null) return null;
  if (option !== void 0) return parseProxy(option, "the proxy option");
  const found = proxyFromEnvironment(target);
  return found ? parseProxy(found.value, `the environment variable ${found.name}`) : null;
}
function parseProxy(value, what) {
  let url;
  try {
    url = new URL(typeof value === "string" && !value.includes("://") ? `http://${value}` : value);
  } catch {
    throw new TypeError(`${what} must be a proxy URL: http://, https://, socks5:// or socks5h://, host and port`);
  }
  if (!(url.protocol in PROXY_PORTS)) throw new TypeError(`${what}: a proxy URL must start with http:, https:, socks5: or socks5h:, got ${url.protocol}`);
  return { url, shown: `${url.protocol}//${url.host}`, login: credentials(url, what) };
}
function proxyFromEnvironment(target) {
  if (isLoopback(target.host)) return null;
  const found = environment(target.secure ? "https_proxy" : "http_proxy") ?? environment("all_proxy");
  if (!found || bypassesProxy(environment("no_proxy")?.value ?? "", target.host, target.port)) return null;
  return found;
}
function environment(name) {
  const env = nodeProcess?.env ?? {};
  for (const each of [name, name.toUpperCase()]) if (env[each]) return { name: each, value: env[each] };
  return null;
}
function isLoopback(host) {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  const value = ipValue(name);
  if (value === null) return false;
  return name.includes(":") ? value === 1n || value >> 24n === 0xffff7fn : value >> 24n === 127n;
}
function bypassesProxy(list, host, port) {
  const name = host.toLowerCase().replace(/\.$/, "");
  const address = ipValue(name);
  return list.split(/[\s,]+/).some((raw) => {
    let entry = raw.toLowerCase();
    if (entry === "*") return true;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const hostPort = bracketed ? null : /^([^:]+):(\d+)$/.exec(entry);
    const entryPort = bracketed?.[2] ?? hostPort?.[2];
    entry = bracketed?.[1] ?? hostPort?.[1] ?? entry;
    entry = entry.replace(/\.$/, "");
    if (!entry || entryPort !== void 0 && Number(entryPort) !== port) return false;
    const slash = entry.indexOf("/");
    const bits = entry.slice(slash + 1);
    if (slash >= 0) return /^\d{1,3}$/.test(bits) && inRange(address, name.includes(":"), entry.slice(0, slash), Number(bits));
    const value = ipValue(entry);
    if (value !== null) return value === address && entry.includes(":") === name.includes(":");
    const domain = entry.replace(/^\*?\./, "");
    return name === domain || name.endsWith(`.${domain}`);
  });
}
function inRange(address, v6, network, bits) {
  const base = ipValue(network);
  const width = network.includes(":") ? 128 : 32;
  if (address === null || base === null || v6 !== (width === 128) || !(bits >= 0 && bits <= width)) return false;
  const shift = BigInt(width - bits);
  return base >> shift === address >> shift;
}
function ipValue(text) {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    return parts.some((part) => part > 255) ? null : parts.reduce((value2, part) => value2 << 8n | BigInt(part), 0n);
  }
  if (!text.includes(":")) return null;
  let groups = text;
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (embedded) {
    const four = ipValue(embedded[1]);
    if (four === null) return null;
    groups = `${text.slice(0, -embedded[1].length)}${(four >> 16n).toString(16)}:${(four & 0xffffn).toString(16)}`;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return null;
  const split = (half) => half ? half.split(":") : [];
  const head = split(halves[0]);
  const tail = halves.length === 2 ? split(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  let value = 0n;
  for (const group of [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail]) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return null;
    value = value << 16n | BigInt(`0x${group}`);
  }
  return value;
}
const HTTP2_IDLE_CLOSE = 1e3;
const HTTP2_SESSION_MEMORY = 1024;
const HTTP2_STREAM_WINDOW = 1024 * KiB;
const HTTP2_CONNECTION_WINDOW = 32 * 1024 * KiB;
class SharedSession {
  session;
  #streams = 0;
  #idle = null;
  constructor(session) {
    this.session = session;
    this.#becomeIdle();
  }
  /**
   * Takes a place for one more stream under the server's SETTINGS_MAX_CONCURRENT_STREAMS
   * (RFC 9113 §5.1.2), if one is left, at once: concurrent connects never count the same
   * place. `request()` fills it; while any is taken, the connection keeps the process alive.
   */
  reserve() {
    const session = this.session;
    if (session.closed || session.destroyed || this.#streams >= (session.remoteSettings.maxConcurrentStreams ?? 100)) return false;
    this.#streams++;
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = null;
    session.ref();
    return true;
  }
  /** Opens a stream in the place `reserve()` took; the place is free again once the stream closes. */
  request(headers) {
    let stream;
    try {
      stream = this.session.request(headers, { endStream: false });
    } catch (error) {
      this.#release();
      throw error;
    }
    stream.once("close", () => this.#release());
    return stream;
  }
  #release() {
    if (--this.#streams === 0) this.#becomeIdle();
  }
  #becomeIdle() {
    this.session.unref();
    this.#idle = startTimer(HTTP2_IDLE_CLOSE, () => this.session.close());
  }
}
const http2Sessions = /* @__PURE__ */ new Map();
async function http2Session(attempt, target, proxy) {
  const key = sessionKey(target, proxy, attempt.options.tls);
  for (let shared = http2Sessions.get(key); shared; shared = http2Sessions.get(key)) {
    const reached2 = await untilAborted(shared.ready.catch(() => void 0), attempt.signal);
    if (reached2 === null || reached2 instanceof SharedSession && reached2.reserve()) return reached2;
    if (http2Sessions.get(key) === shared) break;
  }
  const slot = { ready: openSession(attempt, target, proxy) };
  const forget = () => {
    if (http2Sessions.get(key) === slot) http2Sessions.delete(key);
  };
  http2Sessions.set(key, slot);
  slot.ready.then((reached2) => {
    if (reached2 instanceof SharedSession) {
      reached2.session.once("close", forget);
      reached2.session.once("goaway", forget);
    } else {
      forget();
    }
  }, forget);
  const reached = await slot.ready;
  if (reached instanceof SharedSession && !reached.reserve()) {
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, "connection failed: the server allows no stream on its new HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS 0)");
  }
  return reached;
}
async function openSession(attempt, target, proxy) {
  const { builtins: node, options, signal } = attempt;
  const socket = await dial(node, target, proxy, { ...options.tls, ALPNProtocols: ["h2", "http/1.1"] }, options.proxyTls, signal);
  if (socket.alpnProtocol !== "h2") return socket;
  socket.setNoDelay?.(true);
  const authority2 = target.socketPath !== null ? "localhost" : `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  const session = node.http2().connect(`https://${authority2}`, {
    createConnection: () => socket,
    maxSessionMemory: HTTP2_SESSION_MEMORY,
    settings: { initialWindowSize: HTTP2_STREAM_WINDOW }
  });
  session.once("connect", () => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW));
  session.on("error", ignoreError);
  await connected(session, "remoteSettings", signal);
  if (session.remoteSettings.enableConnectProtocol) return new SharedSession(session);
  if (DEBUG) debugLog(`handshake ${target.host}:${target.port}`, "the HTTP/2 server did not enable extended CONNECT: HTTP/1.1 instead");
  session.close();
  return null;
}
function ignoreError() {
}
function untilAborted(promise, signal) {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
function sessionKey(target, proxy, tls) {
  return JSON.stringify([target.host, target.port, target.socketPath, proxy?.url.href ?? null, tls ? tlsKey(tls) : ""]);
}
const tlsKeys = /* @__PURE__ */ new WeakMap();
function tlsKey(tls) {
  let key = tlsKeys.get(tls);
  if (key === void 0) {
    key = Object.entries(tls).sort(([a], [b]) => a < b ? -1 : 1).map(([name, value]) => `${name}=${typeof value === "object" || typeof value === "function" ? `#${objectId(value)}` : JSON.stringify(value)}`).join(";");
    tlsKeys.set(tls, key);
  }
  return key;
}
const objectIds = /* @__PURE__ */ new WeakMap();
let lastObjectId = 0;
function objectId(value) {
  if (value === null) return 0;
  let id = objectIds.get(value);
  if (id === void 0) objectIds.set(value, id = ++lastObjectId);
  return id;
}
function withoutCredentials(url) {
  if (!url.username && !url.password) return url.href;
  const shown = new URL(url.href);
  shown.username = "";
  shown.password = "";
  return shown.href;
}
function parseUrl(url) {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (!["ws:", "wss:", "ws+unix:", "wss+unix:"].includes(parsed.protocol)) throw new TypeError(`a WebSocket URL must start with ws:, wss: or ws+unix:, got ${parsed.protocol}`);
  if (parsed.hash) throw new TypeError("a WebSocket URL may not have a #fragment");
  return parsed;
}
function destination(url, socketPath) {
  if (socketPath !== void 0) checkSocketPath(socketPath);
  if (!url.protocol.endsWith("+unix:")) return { url, socketPath: socketPath ?? null, shown: withoutCredentials(url) };
  const colon = url.pathname.indexOf(":");
  let path;
  try {
    path = decodeURIComponent(colon < 0 ? url.pathname : url.pathname.slice(0, colon));
  } catch {
    throw new TypeError("the socket path of a ws+unix: URL is not valid percent-encoding (write % as %25)");
  }
  const request = colon < 0 ? "/" : url.pathname.slice(colon + 1).replace(/^(?!\/)/, "/");
  if (!path) throw new TypeError("a ws+unix: URL names its socket: ws+unix:/path/to.sock:/request-path");
  checkSocketPath(path);
  const http = new URL(`${url.protocol === "wss+unix:" ? "wss" : "ws"}://localhost${request}${url.search}`);
  return { url: http, socketPath: path, shown: url.href };
}
const REDIRECTS = /* @__PURE__ */ new Set([301, 302, 303, 307, 308]);
function handshakeDeadline(options) {
  const deadline = new AbortController();
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const timer = timeout > 0 ? startTimer(timeout, () => deadline.abort(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake timed out after ${timeout} ms`))) : null;
  const onAbort = () => deadline.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: deadline.signal,
    clear: () => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  };
}
async function connect(url, options = {}) {
  const target = parseUrl(url);
  const protocols = normalizeProtocols(options.protocols);
  if (!isNode) return connectNative(target, protocols, options);
  let headers = checkClientHeaders(options.headers);
  resolveOptions(options);
  const { maxRedirects } = readNumbers({ maxRedirects: 10 }, options);
  if (options.proxy) parseProxy(options.proxy, "the proxy option");
  credentials(target, "the URL");
  const compression = checkCompressionOptions(options.compression);
  options.signal?.throwIfAborted();
  const deadline = handshakeDeadline(options);
  const attempt = { builtins: loadNode(), protocols, compression, options, signal: deadline.signal };
  try {
    let at = destination(target, options.socketPath);
    const chain = [at.shown];
    for (; ; ) {
      const outcome = await connectTo(attempt, at, headers);
      if (outcome instanceof WebSocket) return outcome;
      const next = redirected(at, outcome, options);
      chain.push(next.shown);
      if (chain.length - 1 > maxRedirects) {
        const shown = chain.length > 12 ? [...chain.slice(0, 5), `\u2026 ${chain.length - 10} more \u2026`, ...chain.slice(-5)] : chain;
        throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `too many redirects (more than ${maxRedirects}): ${shown.join(" \u2192 ")}`, { status: outcome.status, headers: outcome.headers });
      }
      if (next.url.origin !== at.url.origin || next.socketPath !== at.socketPath) headers = withoutCredentialHeaders(headers);
      at = next;
    }
  } finally {
    deadline.clear();
  }
}
function redirected(from, redirect, options) {
  const refused = (why) => new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake refused: the server answered HTTP ${redirect.status} to ${redirect.location}${why}`, { status: redirect.status, headers: redirect.headers });
  if (!options.followRedirects) throw refused(" (followRedirects is off)");
  let url;
  try {
    const location = new URL(redirect.location, from.url);
    location.hash = "";
    url = parseUrl(location);
  } catch (cause) {
    throw refused(`, which is not a WebSocket URL (${cause.message})`);
  }
  if (url.protocol.endsWith("+unix:")) throw refused(": a redirect to a unix socket is refused");
  if (from.url.protocol === "wss:" && url.protocol !== "wss:") throw refused(": a redirect from wss: to an unencrypted URL is refused");
  if (from.socketPath !== null && url.origin === from.url.origin) return { url, socketPath: from.socketPath, shown: withoutCredentials(url) };
  return destination(url, void 0);
}
function withoutCredentialHeaders(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(authorization|cookie)$/i.test(name)));
}
async function connectTo(attempt, at, headers, retried = false) {
  const { options, signal } = attempt;
  const secure = at.url.protocol === "wss:";
  const host = at.url.hostname.replace(/^\[|\]$/g, "");
  const target = { host, port: Number(at.url.port) || (secure ? 443 : 80), socketPath: at.socketPath, secure };
  const proxy = chooseProxy(options.proxy, target);
  if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `dial ${at.socketPath !== null ? `unix socket ${at.socketPath}` : proxy ? `through the proxy ${proxy.shown}` : "direct"}`);
  let reached;
  try {
    reached = await reach(attempt, target, proxy);
  } catch (cause) {
    if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `connection failed: ${signal.aborted ? String(signal.reason?.message ?? signal.reason) : cause.message}`);
    if (signal.aborted) throw signal.reason;
    throw cause instanceof WebSocketError ? cause : new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause });
  }
  if (!(reached instanceof SharedSession)) return handshake(attempt, at, headers, reached);
  try {
    return await extendedConnect(attempt, at, headers, reached);
  } catch (error) {
    if (!unprocessed.has(error) || retried) throw error;
    if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, "the server refused the stream unprocessed: trying again");
    return connectTo(attempt, at, headers, true);
  }
}
async function reach(attempt, target, proxy) {
  const { builtins: node, options, signal } = attempt;
  if (!options.http2 || !target.secure) return dial(node, target, proxy, options.tls, options.proxyTls, signal);
  const reached = await http2Session(attempt, target, proxy);
  if (reached) return reached;
  try {
    return await dial(node, target, proxy, { ...options.tls, ALPNProtocols: ["http/1.1"] }, options.proxyTls, signal);
  } catch (cause) {
    if (signal.aborted) throw cause;
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: the server speaks HTTP/2 without WebSockets (no SETTINGS_ENABLE_CONNECT_PROTOCOL), and HTTP/1.1 failed: ${cause.message}`, { cause });
  }
}
function extendedConnect(attempt, at, headers, shared) {
  const { builtins: node, protocols, compression, signal } = attempt;
  const target = at.url;
  const login = credentials(target, "the URL");
  const withLogin = login && !Object.keys(headers).some((name) => name.toLowerCase() === "authorization") ? { ...headers, authorization: `Basic ${base64(textEncoder.encode(login.join(":")))}` } : headers;
  const offer = compression ? formatDeflateOffer(compression) : "";
  const requestHeaders = extendedConnectHeaders(target, withLogin, protocols, offer);
  const shownHeaders = withLogin === headers ? requestHeaders : extendedConnectHeaders(target, headers, protocols, offer);
  const requestInfo = { method: "CONNECT", url: requestHeaders[":path"] ?? "/", headers: shownHeaders, httpVersion: "2" };
  const logged = `handshake ${loggedUrl(target)}`;
  return new Promise((resolve, reject) => {
    let stream;
    try {
      stream = shared.request(requestHeaders);
    } catch (cause) {
      return reject(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause }));
    }
    const cancel = () => cancelStream(stream, node.http2().constants.NGHTTP2_CANCEL);
    const outcome = oneOutcome(signal, reject, cancel);
    if (outcome.settled) return;
    stream.on("error", (cause) => outcome.fail(streamFailure(stream, node, cause)));
    stream.once("close", () => outcome.fail(streamFailure(stream, node)));
    stream.once("response", (raw) => {
      if (!outcome.settle()) return;
      const status = Number(raw[":status"]);
      const responseHeaders = lowerCaseHeaders(raw);
      delete responseHeaders[":status"];
      try {
        if (status < 200 || status > 299) {
          if (DEBUG) debugLog(logged, `\u2190 HTTP/2 ${status}: refused`);
          const answer2 = refusedHandshake(status, HTTP_REASONS[status] ?? "", responseHeaders);
          if (answer2 instanceof WebSocketError) throw answer2;
          cancel();
          return resolve(answer2);
        }
        const protocol = checkStreamResponse(status, responseHeaders, protocols);
        const answer = { status, headers: responseHeaders, httpVersion: "2" };
        resolve(clientWebSocket(attempt, at, new Http2StreamTransport(stream, node), requestInfo, answer, protocol, shared.session.socket?.remoteAddress));
      } catch (error) {
        if (DEBUG) debugLog(logged, `\u2190 HTTP/2 ${status} refused: ${error.message}`);
        cancel();
        reject(error);
      }
    });
    if (DEBUG) debugLog(logged, `\u2192 HTTP/2 CONNECT ${target.pathname}${protocols.length > 0 ? `, protocols ${protocols.join(", ")}` : ""}`);
  });
}
const unprocessed = /* @__PURE__ */ new WeakSet();
function streamFailure(stream, node, cause) {
  const code = stream.rstCode;
  const error = cause ? new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause }) : new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: the server ended the stream${code ? ` (RST_STREAM code ${code})` : ""} before its answer`);
  if (code === node.http2().constants.NGHTTP2_REFUSED_STREAM) unprocessed.add(error);
  return error;
}
function refusedHandshake(status, statusText, headers) {
  const location = headers["location"];
  if (REDIRECTS.has(status) && location !== void 0) return { status, headers, location };
  return new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake refused: the server answered HTTP ${status} ${statusText}`.trimEnd(), { status, headers });
}
function handshake(attempt, at, headers, socket) {
  const { builtins: node, protocols, compression, signal } = attempt;
  const target = at.url;
  const key = base64(randomBytes(16));
  const requestHeaders = {
    // RFC 6455 §4.1, RFC 7230 §5.4: the port only when it is not the scheme's default (URL.host leaves that out).
    Host: target.host,
    ...headers,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": key,
    "Sec-WebSocket-Version": "13"
  };
  if (protocols.length > 0) requestHeaders["Sec-WebSocket-Protocol"] = protocols.join(", ");
  if (compression) requestHeaders["Sec-WebSocket-Extensions"] = formatDeflateOffer(compression);
  const path = target.pathname + target.search;
  const request = node.http.request({
    path,
    method: "GET",
    headers: requestHeaders,
    createConnection: () => {
      defer(() => socket.resume());
      return socket;
    },
    auth: credentials(target, "the URL")?.join(":")
  });
  const requestInfo = {
    method: "GET",
    url: path,
    headers: Object.fromEntries(Object.entries(requestHeaders).map(([name, value]) => [name.toLowerCase(), value])),
    httpVersion: "1.1"
  };
  const logged = `handshake ${loggedUrl(target)}`;
  return new Promise((resolve, reject) => {
    const outcome = oneOutcome(signal, reject, () => {
      request.destroy();
      socket.destroy();
    });
    if (outcome.settled) return;
    request.on("error", (cause) => {
      if (DEBUG) debugLog(logged, `connection failed: ${cause.message}`);
      outcome.fail(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause }));
    });
    request.on("response", (response) => {
      const status = response.statusCode ?? 0;
      if (DEBUG) debugLog(logged, `\u2190 HTTP ${status}: refused`);
      response.resume();
      const answer = refusedHandshake(status, response.statusMessage ?? "", lowerCaseHeaders(response.headers));
      if (answer instanceof WebSocketError) return outcome.fail(answer);
      if (!outcome.settle()) return;
      request.destroy();
      socket.destroy();
      resolve(answer);
    });
    request.on("upgrade", (response, upgraded, head) => {
      if (!outcome.settle()) return void upgraded.destroy();
      const responseHeaders = lowerCaseHeaders(response.headers);
      try {
        const protocol = checkServerResponse(responseHeaders, acceptKey(key, node.sha1Base64), protocols);
        const answer = { status: response.statusCode ?? 101, headers: responseHeaders, httpVersion: response.httpVersion };
        resolve(clientWebSocket(attempt, at, new SocketTransport(upgraded, head, node), requestInfo, answer, protocol, upgraded.remoteAddress));
      } catch (error) {
        if (DEBUG) debugLog(logged, `\u2190 101 refused by the client: ${error.message}`);
        upgraded.destroy();
        reject(error);
      }
    });
    if (DEBUG) debugLog(logged, `\u2192 GET ${target.pathname}${protocols.length > 0 ? `, protocols ${protocols.join(", ")}` : ""}`);
    request.end();
  });
}
function clientWebSocket(attempt, at, transport, request, response, protocol, remoteAddress) {
  const { builtins: node, compression, options } = attempt;
  const offered = response.headers["sec-websocket-extensions"];
  const agreed = checkDeflateResponse(offered, compression);
  const extensions = agreed ? offered ?? "" : "";
  if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `\u2190 HTTP/${response.httpVersion} ${response.status}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  const deflate = agreed && compression ? new ZlibCompression(node.zlib, agreed, true, compression) : null;
  const link = new ProtocolLink(transport, true, options, deflate);
  return new WebSocket(link, { url: at.shown, request, response, protocol, extensions, remoteAddress }, options);
}
function oneOutcome(signal, reject, abandon2) {
  const onAbort = () => outcome.fail(signal.reason);
  const outcome = {
    settled: false,
    settle() {
      if (outcome.settled) return false;
      outcome.settled = true;
      signal.removeEventListener("abort", onAbort);
      return true;
    },
    fail(error) {
      if (!outcome.settle()) return;
      abandon2();
      reject(error);
    }
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return outcome;
}
async function open(url, handler, options = {}) {
  const ws = await connect(url, options);
  return new Promise((resolve, reject) => runHandler(ws, handler, CloseCode.POLICY_VIOLATION, resolve, reject));
}
function pair(options = {}) {
  resolveOptions(options);
  const settings = checkCompressionOptions(options.compression);
  if (settings && !isNode) throw new TypeError("compression in pair() needs Node.js (zlib)");
  const protocol = options.protocol ?? "";
  if (protocol !== "") normalizeProtocols(protocol);
  const target = parseUrl(options.url ?? "ws://pair/");
  const path = target.pathname + target.search;
  const accepted = settings ? acceptDeflateOffer(formatDeflateOffer(settings), settings) : null;
  const extensions = accepted?.response ?? "";
  const compression = (client2) => {
    if (!settings || !accepted) return null;
    const agreed = client2 ? checkDeflateResponse(extensions, settings) : accepted.agreed;
    return agreed ? new ZlibCompression(loadNode().zlib, agreed, client2, settings) : null;
  };
  const clientEnd = new MemoryTransport();
  const serverEnd = new MemoryTransport();
  clientEnd.peer = serverEnd;
  serverEnd.peer = clientEnd;
  const request = { method: "GET", url: path, headers: {}, httpVersion: "" };
  const client = new WebSocket(new ProtocolLink(clientEnd, true, options, compression(true)), {
    url: withoutCredentials(target),
    request,
    response: { status: 101, headers: {}, httpVersion: "" },
    protocol,
    extensions
  }, options);
  const server = new WebSocket(new ProtocolLink(serverEnd, false, options, compression(false)), { url: path, request, protocol, extensions }, options);
  return [client, server];
}
const RECONNECT_DEFAULTS = { delay: 500, maxDelay: 3e4, factor: 1.6, resetAfter: 1e4, maxRetries: 0 };
const FINAL_CLOSE_CODES = /* @__PURE__ */ new Set([1002, 1003, 1007, 1008, 1009, 1010]);
function isRetriable(error) {
  if (!(error instanceof WebSocketError)) return false;
  if (error.status !== void 0) return error.status >= 500 || error.status === 408 || error.status === 429;
  return error.code < 3e3 && !FINAL_CLOSE_CODES.has(error.code);
}
function retryAfter(error) {
  const value = error instanceof WebSocketError ? error.headers?.["retry-after"] : void 0;
  if (!value) return 0;
  const ms = /^\d+$/.test(value) ? Number(value) * 1e3 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
function reconnect(url, options = {}) {
  return new Reconnector(parseUrl(url), options);
}
class Reconnector {
  #url;
  #options;
  #settings;
  /** Aborted by return() or by the user's signal: stops a handshake or a wait in progress. */
  #stop = new AbortController();
  #connectOptions;
  #current = null;
  #connectedAt = 0;
  /** Retries in a row (a connection that lives `resetAfter` starts over). */
  #streak = 0;
  /** The last next() call, which the next one waits for. */
  #previous = RESOLVED;
  #done = false;
  constructor(url, options) {
    this.#url = url;
    this.#options = options;
    this.#settings = readNumbers(RECONNECT_DEFAULTS, options, { factor: 1 });
    if (options.signal?.aborted) this.#end();
    else options.signal?.addEventListener("abort", () => this.#end(), { once: true });
    this.#connectOptions = { ...options, signal: this.#stop.signal };
  }
  [Symbol.asyncIterator]() {
    return this;
  }
  /** Calls made at once are served one after the other: each gets the connection after the previous call's. */
  next() {
    const step = this.#previous.then(() => this.#step());
    this.#previous = step.then(ignoreValue, ignoreValue);
    return step;
  }
  async #step() {
    if (this.#done) return { value: void 0, done: true };
    const error = this.#current ? await this.#ended(this.#current) : null;
    return this.#connect(error);
  }
  /** Connects, after a backoff when `error` says what ended the last try; throws an ending that is not retried. */
  async #connect(lastError) {
    let error = lastError;
    for (; ; ) {
      if (error !== null) {
        if (!this.#retries(error) || this.#settings.maxRetries > 0 && this.#streak >= this.#settings.maxRetries) {
          this.#done = true;
          throw error;
        }
        await this.#wait(error);
      }
      try {
        const ws = await connect(this.#url, this.#connectOptions);
        this.#current = ws;
        this.#connectedAt = Date.now();
        endQuietlyOn(ws, (ending) => this.#retries(ending));
        return { value: ws, done: false };
      } catch (caught) {
        error = caught;
      }
    }
  }
  /** Ends the iteration (a `break`): the current socket closes with 1000. */
  async return() {
    this.#end();
    return { value: void 0, done: true };
  }
  /** Waits for the current socket's end (closing it if the caller left it open) and says what ended it. */
  async #ended(ws) {
    this.#current = null;
    if (!endOf(ws)) await ws.close(CloseCode.NORMAL_CLOSURE).catch(ignoreValue);
    else await ws.closed;
    if (Date.now() - this.#connectedAt >= this.#settings.resetAfter) this.#streak = 0;
    return endOf(ws) ?? new WebSocketError(ws.closeCode ?? CloseCode.ABNORMAL_CLOSURE, ws.closeReason ?? "");
  }
  #retries(error) {
    if (this.#stop.signal.aborted) return false;
    return this.#options.shouldReconnect?.(error) ?? isRetriable(error);
  }
  /** The backoff of the n-th retry in a row: delay × factor^(n − 1), at most maxDelay, jittered to 50–100 %, and at least Retry-After. */
  async #wait(error) {
    const { delay, maxDelay, factor } = this.#settings;
    const attempt = ++this.#streak;
    const backoff = Math.min(maxDelay, delay * factor ** (attempt - 1));
    const wait = Math.max(backoff * (0.5 + Math.random() / 2), retryAfter(error));
    this.#options.onRetry?.({ attempt, delay: wait, error });
    const signal = this.#connectOptions.signal;
    signal.throwIfAborted();
    await new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, timerDelay(wait));
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
  #end() {
    this.#done = true;
    this.#stop.abort(this.#options.signal?.reason ?? new DOMException("reconnect() was stopped", "AbortError"));
    this.#current?.close(CloseCode.NORMAL_CLOSURE).catch(ignoreValue);
    this.#current = null;
  }
}
function runHandler(ws, handler, failCode, returned, threw) {
  const failed = (error) => void ws.close(failCode).then(() => threw(error, ws));
  let result;
  try {
    result = handler(ws);
  } catch (error) {
    return failed(error);
  }
  Promise.resolve(result).then((value) => void ws.close(CloseCode.NORMAL_CLOSURE).then(() => returned(value)), failed);
}
const ASYNC_DISPOSE = Symbol.asyncDispose ?? /* @__PURE__ */ Symbol.for("nodejs.asyncDispose");
function trackConnections(options) {
  const handlerFailed = (error, ws) => {
    if (error !== endOf(ws)) reportError(options, error, ws);
  };
  return { sockets: /* @__PURE__ */ new Set(), pending: /* @__PURE__ */ new Set(), sessions: /* @__PURE__ */ new Map(), connections: /* @__PURE__ */ new Set(), closing: false, handlerFailed };
}
function trackSockets(httpServer, tracker) {
  const untrack = function() {
    tracker.connections.delete(this);
  };
  httpServer.on("connection", (socket) => {
    tracker.connections.add(socket);
    socket.on("close", untrack);
  });
}
async function listen(host, port, handler, options = {}) {
  if (!isNode) throw new Error("listen() needs Node.js: a browser cannot accept connections");
  if (options.reusePort) checkReusePort();
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  const node = loadNode();
  const handshakeTimeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const serverOptions = {
    headersTimeout: handshakeTimeout,
    requestTimeout: handshakeTimeout,
    connectionsCheckingInterval: Math.min(handshakeTimeout || 3e4, 1e3),
    ...options.maxHeaderSize !== void 0 ? { maxHeaderSize: options.maxHeaderSize } : {}
  };
  const answerPlainHttp = (request, response) => {
    const verdict = checkClientRequest(request.method ?? "", request.httpVersion, lowerCaseHeaders(request.headers));
    const refusal = "status" in verdict ? verdict : { status: 426, headers: { Upgrade: "websocket" } };
    const { body, headers } = refusalContent(refusal);
    response.writeHead(refusal.status, request.httpVersion === "2.0" ? http2Headers(headers) : headers);
    response.end(body);
  };
  const tracker = trackConnections(options);
  if (options.http2 && !options.tls) throw new TypeError("http2 needs tls: HTTP/2 is chosen by ALPN in the TLS handshake (h2c is not served)");
  const httpServer = options.http2 ? createHttp2Server(node, options, serverOptions, answerPlainHttp, handler, tracker) : options.tls ? node.https.createServer({ ...options.tls, ...serverOptions }, answerPlainHttp) : node.http.createServer(serverOptions, answerPlainHttp);
  httpServer.maxHeadersCount = (options.maxHeaders ?? DEFAULT_MAX_HEADERS) + 1;
  httpServer.on("upgrade", (request, socket, head) => acceptUpgrade(node, request, socket, head, handler, options, tracker));
  const scheme = options.tls ? "wss" : "ws";
  let closing;
  trackSockets(httpServer, tracker);
  const closeTimeout = options.closeTimeout ?? DEFAULTS.closeTimeout;
  const closeServer = () => closing ??= shutdown(httpServer, tracker, closeTimeout);
  const controls = { close: closeServer, [ASYNC_DISPOSE]: closeServer };
  if (host.startsWith("unix:")) {
    const path = host.slice("unix:".length);
    await listenOnSocketFile(node, httpServer, path);
    reportServerErrors(httpServer, options);
    return { host, port: 0, url: `${scheme}+unix:${path.replace(/[%?#:]/g, encodeURIComponent)}`, ...controls };
  }
  await bindServer(httpServer, { port, host, ...options.reusePort ? { reusePort: true } : {} });
  reportServerErrors(httpServer, options);
  const address = httpServer.address();
  const boundPort = typeof address === "object" && address ? address.port : port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return { host, port: boundPort, url: `${scheme}://${urlHost}:${boundPort}`, ...controls };
}
function bindServer(httpServer, where) {
  return new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(where, () => {
      httpServer.off("error", reject);
      resolve();
    });
  });
}
function reportServerErrors(httpServer, options) {
  httpServer.on("error", (error) => reportError(options, error));
}
const socketPathsInUse = /* @__PURE__ */ new Set();
async function listenOnSocketFile(node, httpServer, path) {
  checkSocketPath(path);
  if (socketPathsInUse.has(path)) throw Object.assign(new Error(`listen EADDRINUSE: this process already listens on ${path}`), { code: "EADDRINUSE" });
  socketPathsInUse.add(path);
  httpServer.once("close", () => socketPathsInUse.delete(path));
  try {
    await bindOrReplaceStale(node, httpServer, path);
  } catch (error) {
    socketPathsInUse.delete(path);
    throw error;
  }
}
async function bindOrReplaceStale(node, httpServer, path) {
  try {
    return await bindServer(httpServer, { path });
  } catch (error) {
    if (error.code !== "EADDRINUSE" || path.startsWith("\0")) throw error;
    if (!node.fs.lstatSync(path, { throwIfNoEntry: false })?.isSocket()) throw new Error(`cannot listen on ${path}: it exists and is not a socket`, { cause: error });
    const refused = await connected(node.net.connect({ path }), "connect", new AbortController().signal).then(
      (probe) => (probe.destroy(), false),
      (probeError) => probeError.code === "ECONNREFUSED"
    );
    if (!refused) throw error;
    node.fs.unlinkSync(path);
  }
  await bindServer(httpServer, { path });
}
function checkSocketPath(path) {
  const limit = nodeProcess?.platform === "linux" ? 107 : 103;
  if (!path) throw new TypeError("a unix socket path may not be empty");
  if (utf8Length(path) > limit) throw new TypeError(`a unix socket path may be at most ${limit} bytes here; ${JSON.stringify(path.slice(0, 40))}\u2026 is ${utf8Length(path)}`);
}
function checkReusePort() {
  const version = nodeProcess?.versions.node ?? "";
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (!(major > 23 || major === 23 && minor >= 1 || major === 22 && minor >= 12)) {
    throw new Error(`reusePort needs Node.js 22.12 or 23.1 and newer; this is Node.js ${version}`);
  }
  if (nodeProcess?.versions.bun) throw new Error("reusePort is not available on Bun: its HTTP server ignores the option");
  const platform = nodeProcess?.platform ?? "";
  if (!REUSE_PORT_PLATFORMS.has(platform)) throw new Error(`reusePort is not available on ${platform}: Node offers it on ${[...REUSE_PORT_PLATFORMS].join(", ")}`);
}
const REUSE_PORT_PLATFORMS = /* @__PURE__ */ new Set(["linux", "freebsd", "dragonfly", "sunos", "aix"]);
async function shutdown(httpServer, tracker, closeTimeout) {
  tracker.closing = true;
  const stopped = new Promise((resolve) => httpServer.close(() => resolve()));
  if (httpServer.closeAllConnections) httpServer.closeAllConnections();
  else httpServer.closeIdleConnections?.();
  for (const socket of tracker.pending) socket.destroy();
  await Promise.all([...tracker.sockets].map((ws) => ws.close(CloseCode.GOING_AWAY).catch(() => {
  })));
  for (const session of tracker.sessions.keys()) session.close();
  if (closeTimeout > 0) {
    let timer;
    const late = await Promise.race([stopped.then(() => false), new Promise((resolve) => timer = startTimer(closeTimeout, () => resolve(true)))]);
    clearTimeout(timer);
    if (late) for (const socket of tracker.connections) socket.destroy();
  }
  await stopped;
}
const DEFAULT_MAX_STREAMS = 1e3;
function createHttp2Server(node, options, http1Options, answerPlainHttp, handler, tracker) {
  const { maxConcurrentStreams } = readNumbers({ maxConcurrentStreams: DEFAULT_MAX_STREAMS }, options, { maxConcurrentStreams: 1 });
  const settings = { enableConnectProtocol: true, maxConcurrentStreams, maxHeaderListSize: options.maxHeaderSize ?? 16 * KiB, initialWindowSize: HTTP2_STREAM_WINDOW };
  const maxHeaderListPairs = (options.maxHeaders ?? DEFAULT_MAX_HEADERS) + 8;
  const server = node.http2().createSecureServer({
    ...options.tls,
    allowHTTP1: true,
    noDelay: true,
    settings,
    maxHeaderListPairs,
    maxSessionMemory: HTTP2_SESSION_MEMORY
  }, answerPlainHttp);
  Object.assign(server, http1Options);
  server.on("connect", (request, response) => acceptStream(node, response.stream, request.headers, handler, options, tracker));
  server.on("session", (session) => watchSession(session, options, tracker));
  return server;
}
function watchSession(session, options, tracker) {
  tracker.sessions.set(session, 0);
  session.on("error", ignoreError);
  session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
  session.once("close", () => tracker.sessions.delete(session));
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  if (timeout > 0) {
    session.setTimeout(timeout);
    session.on("timeout", () => {
      if (!tracker.sessions.get(session)) session.close();
    });
  }
}
function upgrade(request, socket, head, handler, options = {}) {
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  const tracker = trackConnections(options);
  void acceptUpgrade(loadNode(), request, socket, head, handler, options, tracker);
}
function isUpgrade(request) {
  const { headers } = request;
  if (headers[":method"] === "CONNECT") return String(headers[":protocol"] ?? "").toLowerCase() === "websocket";
  const upgradeHeader = headers["upgrade"];
  return hasToken(Array.isArray(upgradeHeader) ? upgradeHeader.join(",") : upgradeHeader, "websocket");
}
function upgradeStream(stream, headers, handler, options = {}) {
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  void acceptStream(loadNode(), stream, headers, handler, options, trackConnections(options));
}
function reportError(options, error, ws) {
  try {
    if (options.onError) options.onError(error, ws);
    else console.error(`websockets.ts: ${ws ? "connection handler" : "handshake hook"} failed:`, error);
  } catch {
  }
}
function refuse(socket, refusal) {
  if (DEBUG) debugLog(`handshake from ${socket.remoteAddress ?? "?"}`, `\u2192 HTTP ${refusal.status}: refused`);
  if (socket.destroyed) return;
  socket.end(formatRefusal(refusal));
  startTimer(1e3, () => socket.destroy());
}
function destroySocket() {
  this.destroy();
}
async function acceptUpgrade(node, request, socket, head, handler, options, tracker) {
  socket.on("error", destroySocket);
  if (tracker.closing) return refuse(socket, { status: 503, body: "the server is shutting down" });
  const headers = lowerCaseHeaders(request.headers);
  const requestInfo = { method: request.method ?? "", url: request.url ?? "/", headers, httpVersion: request.httpVersion };
  if (request.rawHeaders.length / 2 > (options.maxHeaders ?? DEFAULT_MAX_HEADERS)) return refuse(socket, { status: 431, body: "too many headers" });
  const hello = checkClientRequest(requestInfo.method, request.httpVersion, headers);
  if ("status" in hello) return refuse(socket, hello);
  const protocol = await negotiate(requestInfo, hello.protocols, socket, options, tracker);
  if (typeof protocol !== "string") return refuse(socket, protocol);
  if (socket.destroyed) return;
  const { extensions, compression } = acceptCompression(node, headers, options);
  if (DEBUG) debugLog(`handshake from ${socket.remoteAddress ?? "?"}`, `\u2192 101 for ${requestInfo.url.split("?")[0]}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  socket.write(formatAcceptance(acceptKey(hello.key, node.sha1Base64), protocol, extensions));
  const details = { url: requestInfo.url, request: requestInfo, protocol, extensions, remoteAddress: socket.remoteAddress };
  startConnection(new SocketTransport(socket, head, node), details, compression, handler, options, tracker);
  socket.off("error", destroySocket);
}
async function acceptStream(node, stream, rawHeaders, handler, options, tracker) {
  stream.on("error", ignoreError);
  const remoteAddress = stream.session?.socket?.remoteAddress;
  if (tracker.closing) return refuseStream(stream, { status: 503, body: "the server is shutting down" }, remoteAddress);
  const headers = lowerCaseHeaders(rawHeaders);
  const count = Object.keys(headers).filter((name) => !name.startsWith(":")).length;
  if (count > (options.maxHeaders ?? DEFAULT_MAX_HEADERS)) return refuseStream(stream, { status: 431, body: "too many headers" }, remoteAddress);
  const hello = checkExtendedConnect(headers);
  if ("status" in hello) return refuseStream(stream, hello, remoteAddress);
  if (stream.endAfterHeaders) return refuseStream(stream, { status: 400, body: "an extended CONNECT that ends its stream at once cannot carry a WebSocket" }, remoteAddress);
  headers["host"] ??= headers[":authority"];
  const requestInfo = { method: "CONNECT", url: headers[":path"], headers, httpVersion: "2" };
  const protocol = await negotiate(requestInfo, hello.protocols, stream, options, tracker);
  if (typeof protocol !== "string") return refuseStream(stream, protocol, remoteAddress);
  if (stream.closed || stream.destroyed) return;
  const { extensions, compression } = acceptCompression(node, headers, options);
  if (DEBUG) debugLog(`handshake from ${remoteAddress ?? "?"}`, `\u2192 HTTP/2 200 for ${requestInfo.url.split("?")[0]}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  stream.respond({ ":status": 200, ...protocol ? { "sec-websocket-protocol": protocol } : {}, ...extensions ? { "sec-websocket-extensions": extensions } : {} });
  countStream(stream, tracker);
  const details = { url: requestInfo.url, request: requestInfo, protocol, extensions, remoteAddress };
  startConnection(new Http2StreamTransport(stream, node), details, compression, handler, options, tracker);
  stream.off("error", ignoreError);
}
function countStream(stream, tracker) {
  const session = stream.session;
  const count = session && tracker.sessions.get(session);
  if (!session || count === void 0) return;
  tracker.sessions.set(session, count + 1);
  stream.once("close", () => {
    const now = tracker.sessions.get(session);
    if (now !== void 0) tracker.sessions.set(session, now - 1);
  });
}
async function negotiate(request, offered, pending, options, tracker) {
  tracker.pending.add(pending);
  try {
    const verdict = options.verify ? await verifyWithTimeout(options.verify, options, request) : true;
    if (verdict !== true) return verdict === false ? { status: 403 } : verdict;
    return chooseProtocol(offered, request, options);
  } catch (error) {
    reportError(options, error);
    return { status: 500 };
  } finally {
    tracker.pending.delete(pending);
  }
}
function acceptCompression(node, headers, options) {
  const settings = checkCompressionOptions(options.compression);
  const deflate = settings ? acceptDeflateOffer(headers["sec-websocket-extensions"], settings) : null;
  const compression = deflate && settings ? new ZlibCompression(node.zlib, deflate.agreed, false, settings) : null;
  return { extensions: deflate?.response ?? "", compression };
}
function startConnection(transport, details, compression, handler, options, tracker) {
  const ws = new WebSocket(new ProtocolLink(transport, false, options, compression), details, options);
  track(ws, tracker.sockets);
  runHandler(ws, handler, CloseCode.INTERNAL_ERROR, ignoreValue, tracker.handlerFailed);
}
function refuseStream(stream, refusal, remoteAddress) {
  if (DEBUG) debugLog(`handshake from ${remoteAddress ?? "?"}`, `\u2192 HTTP/2 ${refusal.status}: refused`);
  if (stream.closed || stream.destroyed) return;
  const { body, headers } = refusalContent(refusal);
  stream.resume();
  stream.respond({ ":status": refusal.status, ...http2Headers(headers) });
  stream.end(body);
}
function http2Headers(headers) {
  const kept = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HTTP1_ONLY_HEADERS.has(lower)) kept[lower] = value;
  }
  return kept;
}
async function verifyWithTimeout(verify, options, request) {
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const verdict = Promise.resolve(verify(request));
  if (timeout <= 0) return verdict;
  let timer;
  const expired = new Promise((resolve) => timer = startTimer(timeout, () => resolve({ status: 408, body: "handshake timed out" })));
  try {
    return await Promise.race([verdict, expired]);
  } finally {
    clearTimeout(timer);
  }
}
const NativeState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };
const BUFFER_POLL_MS = 10;
class NativeLink {
  #native;
  #highWaterMark;
  #closeTimeout;
  /** close() was called: new sends are refused; the close waits for the sends before it. */
  #closing = false;
  #sequencer = new SendSequencer();
  #opened;
  #resolveOpened;
  #events;
  /** Set once the native socket has closed. */
  #error = null;
  /** Ends a send(asyncIterable) still waiting for its iterable once the socket has closed. */
  #closedEnd = new StepAbort();
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  get stats() {
    return { messagesIn: this.#messagesIn, messagesOut: this.#messagesOut, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, latency: void 0 };
  }
  get accepting() {
    return !this.#error && !this.#closing;
  }
  constructor(native, options) {
    this.#native = native;
    ({ highWaterMark: this.#highWaterMark, closeTimeout: this.#closeTimeout } = resolveOptions(options));
    native.binaryType = "arraybuffer";
    this.#opened = new Promise((resolve) => this.#resolveOpened = resolve);
    if (native.readyState === NativeState.OPEN) this.#resolveOpened();
    else native.addEventListener("open", () => this.#resolveOpened());
  }
  /** Read live: a socket wrapped while connecting learns them when it opens. */
  get protocol() {
    return this.#native.protocol;
  }
  get extensions() {
    return this.#native.extensions;
  }
  start(events) {
    this.#events = events;
    const native = this.#native;
    native.addEventListener("message", ({ data }) => {
      const message = typeof data === "string" ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
      this.#messagesIn++;
      this.#bytesIn += messageBytes(message);
      events.message(message);
    });
    native.addEventListener("close", ({ code, reason }) => this.#onClose(code, reason));
    native.addEventListener("error", () => defer(() => {
      const state = native.readyState;
      if (state === NativeState.CONNECTING || state === NativeState.CLOSED) this.#onClose(CloseCode.ABNORMAL_CLOSURE, "");
    }));
    if (native.readyState === NativeState.CLOSED) this.#onClose(CloseCode.ABNORMAL_CLOSURE, "");
  }
  #onClose(code, reason = "") {
    if (this.#error) return;
    const info = code !== void 0 && code >= 1e3 && code <= 4999 ? { code, reason } : { code: CloseCode.ABNORMAL_CLOSURE, reason: "" };
    this.#error = new WebSocketError(info.code, info.reason);
    this.#closedEnd.abort(this.#error);
    this.#resolveOpened();
    this.#events.ended(this.#error, info);
    this.#events.closed(info);
  }
  get bufferedAmount() {
    return this.#native.bufferedAmount;
  }
  /** A plain WebSocket cannot stop reading (its receive queue is unbounded); one over a WebSocketStream can. */
  pause() {
    if (this.#native instanceof StreamSocket) this.#native.pause();
  }
  resume() {
    if (this.#native instanceof StreamSocket) this.#native.resume();
  }
  /** Never waits: a native WebSocket hands over whole messages. */
  proceed() {
  }
  /**
   * A browser cannot send fragments: an iterable is joined into one message. Resolves when
   * `bufferedAmount` is at or below the high-water mark, polled every few milliseconds.
   */
  send(message) {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closing) return Promise.reject(new WebSocketError(CloseCode.NORMAL_CLOSURE, "the connection is closing"));
    return this.#sequencer.enqueue(async () => {
      const payload = isAsyncIterable(message) ? joinChunks(await this.#collect(message)) : isChunk(message) ? message : joinChunks(message);
      await this.#opened;
      if (this.#error) throw this.#error;
      if (this.#native.readyState !== NativeState.OPEN) throw new WebSocketError(CloseCode.NORMAL_CLOSURE, "the connection is closing");
      const sent = nativePayload(payload);
      this.#native.send(sent);
      this.#messagesOut++;
      this.#bytesOut += messageBytes(sent);
      while (!this.#error && this.#native.bufferedAmount > this.#highWaterMark) await new Promise((resolve) => setTimeout(resolve, BUFFER_POLL_MS));
    });
  }
  /** The chunks of an async iterable, to be joined into one message (a browser cannot send fragments). */
  async #collect(chunks) {
    const collected = [];
    await forEachChunk(chunks, this.#closedEnd, (chunk) => collected.push(chunk));
    return collected;
  }
  ping() {
    return Promise.reject(new Error("ping() is not available in a browser: its WebSocket API cannot send pings (the browser answers the server's pings itself)"));
  }
  pong() {
    return Promise.reject(new Error("pong() is not available in a browser: its WebSocket API cannot send pongs"));
  }
  /**
   * Messages sent before close() go out first: the native close waits for them (as the Node
   * side does), bounded by the close timeout. A browser may only send 1000 and 3000–4999;
   * other codes (like `open`'s 1008) go out as 1000.
   */
  close(code, reason) {
    if (this.#error || this.#closing) return;
    this.#closing = true;
    const closeNative = () => {
      if (this.#error || this.#native.readyState >= NativeState.CLOSING) return;
      this.#native.close(code === CloseCode.NORMAL_CLOSURE || code >= 3e3 && code <= 4999 ? code : CloseCode.NORMAL_CLOSURE, reason);
    };
    if (!this.#sequencer.busy) return closeNative();
    const timer = this.#closeTimeout > 0 ? startTimer(this.#closeTimeout, closeNative) : null;
    this.#sequencer.enqueue(async () => closeNative()).finally(() => timer && clearTimeout(timer)).catch(() => {
    });
  }
}
class StreamSocket {
  url;
  protocol = "";
  extensions = "";
  readyState = NativeState.CONNECTING;
  bufferedAmount = 0;
  binaryType = "arraybuffer";
  #stream;
  #listeners = /* @__PURE__ */ new Map();
  #writer = null;
  #reader = null;
  #paused = false;
  #reading = false;
  constructor(stream) {
    this.#stream = stream;
    this.url = stream.url;
    stream.opened.then(({ readable, writable, protocol, extensions }) => {
      if (this.readyState !== NativeState.CONNECTING) return;
      this.protocol = protocol;
      this.extensions = extensions;
      this.readyState = NativeState.OPEN;
      this.#writer = writable.getWriter();
      this.#reader = readable.getReader();
      this.#emit("open", {});
      void this.#read();
    }, () => this.#emit("error", {}));
    stream.closed.then(({ closeCode, reason }) => this.#onClosed(closeCode, reason), () => this.#onClosed(CloseCode.ABNORMAL_CLOSURE, ""));
  }
  addEventListener(type, listener) {
    const listeners = this.#listeners.get(type);
    if (listeners) listeners.push(listener);
    else this.#listeners.set(type, [listener]);
  }
  send(data) {
    const writer = this.#writer;
    if (!writer) return;
    const bytes = messageBytes(data);
    this.bufferedAmount += bytes;
    writer.write(data).then(() => this.bufferedAmount -= bytes, () => {
    });
  }
  close(code, reason) {
    if (this.readyState >= NativeState.CLOSING) return;
    this.readyState = NativeState.CLOSING;
    this.#stream.close({ ...code === void 0 ? {} : { closeCode: code }, ...reason === void 0 ? {} : { reason } });
  }
  pause() {
    this.#paused = true;
  }
  resume() {
    this.#paused = false;
    if (!this.#reading) void this.#read();
  }
  /** Reads messages one at a time while not paused: an unread stream is the browser's backpressure. */
  async #read() {
    const reader = this.#reader;
    if (!reader) return;
    this.#reading = true;
    try {
      while (!this.#paused) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#emit("message", { data: value });
      }
    } catch {
    } finally {
      this.#reading = false;
    }
  }
  #onClosed(code, reason) {
    if (this.readyState === NativeState.CLOSED) return;
    this.readyState = NativeState.CLOSED;
    this.#emit("close", { code: code ?? CloseCode.ABNORMAL_CLOSURE, reason: reason ?? "" });
  }
  #emit(type, event) {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}
function messageBytes(message) {
  return typeof message === "string" ? utf8Length(message) : message.byteLength;
}
function nativePayload(message) {
  if (typeof message === "string" || message instanceof ArrayBuffer) return message;
  const bytes = toBytes(message);
  if (bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
  const copy = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(copy).set(bytes);
  return copy;
}
function joinChunks(chunks) {
  const parts = readFragments(chunks);
  if (parts[0][1] === Opcode.TEXT) return parts.map(([bytes]) => utf8Decoder.decode(bytes)).join("");
  return concatBytes(parts.map(([bytes]) => bytes));
}
function wrap(native, options = {}) {
  const link = new NativeLink(native, options);
  return new WebSocket(link, { url: native.url, request: { method: "GET", url: native.url, headers: {}, httpVersion: "" }, protocol: "", extensions: "" }, options);
}
function connectNative(target, protocols, options) {
  if (options.headers) return Promise.reject(new TypeError("headers cannot be set in a browser: its WebSocket API has no way to send them"));
  if (options.tls) return Promise.reject(new TypeError("tls options are Node-only: a browser uses its own certificate store"));
  if (options.socketPath || target.protocol.endsWith("+unix:")) return Promise.reject(new TypeError("unix domain sockets are Node-only: a browser cannot reach one"));
  const { WebSocket: NativeConstructor, WebSocketStream: StreamConstructor } = globalThis;
  if (!NativeConstructor && !StreamConstructor) return Promise.reject(new Error("this runtime has neither Node built-ins nor a WebSocket"));
  options.signal?.throwIfAborted();
  const native = StreamConstructor ? new StreamSocket(new StreamConstructor(target.href, { protocols })) : new NativeConstructor(target.href, protocols);
  return new Promise((resolve, reject) => {
    let settled = false;
    const deadline = handshakeDeadline(options);
    const settle = (error) => {
      if (settled) return;
      settled = true;
      deadline.clear();
      deadline.signal.removeEventListener("abort", onAbort);
      if (error) {
        native.close();
        reject(error);
      } else {
        resolve(wrap(native, options));
      }
    };
    const onAbort = () => settle(deadline.signal.reason);
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    native.addEventListener("open", () => settle(null));
    native.addEventListener("close", ({ code = CloseCode.ABNORMAL_CLOSURE, reason = "" }) => settle(new WebSocketError(code, reason || "connection failed")));
  });
}
export {
  CloseCode,
  DEFAULTS,
  FrameParser,
  Opcode,
  WebSocket,
  WebSocketError,
  applyMask,
  broadcast,
  close,
  connect,
  encodeFrame,
  isOk,
  isUpgrade,
  listen,
  open,
  pair,
  ping,
  pong,
  receive,
  reconnect,
  send,
  upgrade,
  upgradeStream,
  wrap
};

#!/usr/bin/python3
"""Scriptable raw HTTP/2 client used by the Node tests to send hostile input.

Usage: /usr/bin/python3 test/h2peer.py HOST PORT [--tls] [--timeout SECONDS] < script.json

Needs Debian's python3-h2 (4.x); standard library otherwise.

The script is a JSON list of steps, each an object with "op":
  {"op":"no_wait_settings"}        must come first: send requests before the server's SETTINGS arrive
  {"op":"settings","values":{"ENABLE_PUSH":0,"4":1000}}   send a SETTINGS frame (names or numbers)
  {"op":"request","stream":1,"headers":[[n,v],...],"end_stream":false}
                                   HEADERS exactly as given (no validation or normalisation);
                                   "stream" may be omitted (next free id). If h2's state machine
                                   refuses (say a lower stream id), the frame is sent raw anyway.
  {"op":"data","stream":1,"hex":"...","end_stream":false}
  {"op":"data","stream":1,"repeat":N,"size":M,"end_stream":false,"ignore_flow":false,"timeout":10}
                                   N DATA frames of M zero bytes. Without ignore_flow it waits for
                                   flow-control window (up to "timeout", then a timeout event) and
                                   splits frames larger than the peer's max frame size; with
                                   "ignore_flow":true frames are built raw and sent regardless of
                                   window or frame size.
  {"op":"reset","stream":1,"code":8}
  {"op":"wait","event":"response","stream":1,"timeout":5}
                                   waits for the next not yet waited-for event of that name (and
                                   stream, if given); prints {"event":"timeout",...} if none comes
  {"op":"sleep","seconds":0.5}     keeps reading while sleeping
  {"op":"open_reset_loop","count":1000,"headers":[...],"code":8}
                                   opens a stream and resets it at once, count times
  {"op":"window","initial":0}      SETTINGS_INITIAL_WINDOW_SIZE=initial; with 0 also stops
                                   acknowledging received data (no WINDOW_UPDATE), so the server can
                                   never send DATA. "ack":true/false overrides.
  {"op":"window_update","stream":0,"increment":N}   raw WINDOW_UPDATE (stream 0 = connection)
  {"op":"ping","hex":"0102030405060708"}
  {"op":"raw","hex":"..."}         writes bytes as they are onto the connection
  {"op":"close","code":0}          GOAWAY, then closes the TCP connection

Output: one JSON object per line on stdout, flushed at once:
  {"event":"connected","alpn":...}
  {"event":"settings","values":{...}}            server SETTINGS (names from h2, else numbers)
  {"event":"settings_ack"}
  {"event":"response","stream":1,"headers":[[name,value],...]}   (1xx: "informational":true)
  {"event":"trailers","stream":1,"headers":[...]}
  {"event":"data","stream":1,"length":N,"hex":"first 64 bytes"}
  {"event":"end","stream":1}                     END_STREAM received
  {"event":"reset","stream":1,"code":N}          RST_STREAM received
  {"event":"window_update","stream":N,"delta":N}
  {"event":"ping"} / {"event":"ping_ack"}
  {"event":"goaway","code":N,"last_stream":N}
  {"event":"unknown_frame","type":N}
  {"event":"closed","by":"remote"|"local"}      TCP connection ended
  {"event":"timeout","waited":...,"stream":...}  a wait (or a wait for window/settings) timed out
  {"event":"reset_loop_done","count":N}
  {"event":"error","message":...}
  {"event":"timeout_global"}                     --timeout (default 20 s) passed; exits 0
  {"event":"done"}                               end of the script
"""

import errno
import json
import os
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import (DataFrame, HeadersFrame, PingFrame, RstStreamFrame,
                              WindowUpdateFrame)


def out(obj):
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # nobody is listening any more
        os._exit(0)


def b2s(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v


def s2b(v):
    if isinstance(v, bytes):
        return v
    return str(v).encode("latin-1")


def setting_key(k):
    if isinstance(k, int) or (isinstance(k, str) and k.isdigit()):
        return int(k)
    name = str(k).upper().replace("SETTINGS_", "")
    return int(h2.settings.SettingCodes[name])


def setting_name(k):
    try:
        return h2.settings.SettingCodes(k).name
    except ValueError:
        return str(int(k))


class GlobalTimeout(Exception):
    pass


class Peer:
    def __init__(self, host, port, use_tls, global_timeout):
        self.deadline = time.monotonic() + global_timeout
        cfg = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=cfg)
        raw = socket.create_connection((host, port), timeout=max(1.0, self.remaining()))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        alpn = None
        if use_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname=None if host[:1].isdigit() else host)
            alpn = raw.selected_alpn_protocol()
        raw.setblocking(False)
        self.sock = raw
        self.outbuf = bytearray()
        self.socket_open = True
        self.broken = False        # h2 state machine gave up (protocol error)
        self.got_settings = False
        self.ack_data = True
        self.events = []           # (name, stream) of every event printed
        self.cursor = {}           # (name, stream) -> index after the last matched event
        out({"event": "connected", "alpn": alpn})
        self.conn.initiate_connection()
        self.flush_h2()

    # ---- plumbing ----
    def remaining(self):
        return self.deadline - time.monotonic()

    def check_deadline(self):
        if self.remaining() <= 0:
            raise GlobalTimeout()

    def emit(self, obj):
        out(obj)
        self.events.append((obj["event"], obj.get("stream")))

    def flush_h2(self):
        if not self.broken:
            data = self.conn.data_to_send()
            if data:
                self.outbuf += data

    def write_raw(self, data):
        self.flush_h2()   # keep ordering with what h2 already queued
        self.outbuf += data

    def try_write(self):
        while self.outbuf and self.socket_open:
            try:
                n = self.sock.send(self.outbuf[:65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except OSError as e:
                self.on_closed("remote", str(e))
                return
            del self.outbuf[:n]

    def on_closed(self, by, reason=None):
        if not self.socket_open:
            return
        self.socket_open = False
        self.outbuf.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        obj = {"event": "closed", "by": by}
        if reason:
            obj["reason"] = reason
        self.emit(obj)

    def pump(self, timeout):
        """Read, handle and write for up to timeout seconds (at least one pass)."""
        end = time.monotonic() + max(0.0, timeout)
        while True:
            self.check_deadline()
            self.flush_h2()
            self.try_write()
            if not self.socket_open:
                return
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
            wait = 0 if pending else max(0.0, min(end - time.monotonic(), self.remaining()))
            wl = [self.sock] if self.outbuf else []
            try:
                r, w, _ = select.select([self.sock], wl, [], wait)
            except (OSError, ValueError):
                self.on_closed("remote", "select failed")
                return
            if r or pending:
                self.read_once()
            if time.monotonic() >= end:
                self.flush_h2()
                self.try_write()
                return

    def read_once(self):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError as e:
            reason = "reset" if getattr(e, "errno", None) == errno.ECONNRESET else str(e)
            self.on_closed("remote", reason)
            return
        if not data:
            self.on_closed("remote")
            return
        if self.broken:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.broken = True
            self.emit({"event": "error", "message": "h2 protocol error on receive: %r" % (e,)})
            # h2 queued a GOAWAY; send it
            self.outbuf += self.conn.data_to_send()
            return
        for ev in events:
            self.handle(ev)

    def handle(self, ev):
        E = h2.events
        if isinstance(ev, E.RemoteSettingsChanged):
            self.got_settings = True
            self.emit({"event": "settings",
                       "values": {setting_name(k): v.new_value for k, v in ev.changed_settings.items()}})
        elif isinstance(ev, E.SettingsAcknowledged):
            self.emit({"event": "settings_ack"})
        elif isinstance(ev, E.InformationalResponseReceived):
            self.emit({"event": "response", "stream": ev.stream_id, "informational": True,
                       "headers": [[b2s(n), b2s(v)] for n, v in ev.headers]})
        elif isinstance(ev, E.ResponseReceived):
            self.emit({"event": "response", "stream": ev.stream_id,
                       "headers": [[b2s(n), b2s(v)] for n, v in ev.headers]})
        elif isinstance(ev, E.TrailersReceived):
            self.emit({"event": "trailers", "stream": ev.stream_id,
                       "headers": [[b2s(n), b2s(v)] for n, v in ev.headers]})
        elif isinstance(ev, E.RequestReceived):
            # only possible if the server misbehaves badly; report it
            self.emit({"event": "request", "stream": ev.stream_id,
                       "headers": [[b2s(n), b2s(v)] for n, v in ev.headers]})
        elif isinstance(ev, E.DataReceived):
            self.emit({"event": "data", "stream": ev.stream_id, "length": len(ev.data),
                       "hex": ev.data[:64].hex()})
            if self.ack_data and ev.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except h2.exceptions.StreamClosedError:
                    # stream gone: still give the connection window back
                    self.conn.increment_flow_control_window(ev.flow_controlled_length)
                except h2.exceptions.ProtocolError as e:
                    self.emit({"event": "error", "message": "acknowledge failed: %r" % (e,)})
        elif isinstance(ev, E.StreamEnded):
            self.emit({"event": "end", "stream": ev.stream_id})
        elif isinstance(ev, E.StreamReset):
            obj = {"event": "reset", "stream": ev.stream_id, "code": int(ev.error_code)}
            if not ev.remote_reset:
                obj["local"] = True   # h2 itself reset the stream (e.g. frame on a closed stream)
            self.emit(obj)
        elif isinstance(ev, E.WindowUpdated):
            self.emit({"event": "window_update", "stream": ev.stream_id, "delta": ev.delta})
        elif isinstance(ev, E.PingReceived):
            self.emit({"event": "ping", "hex": ev.ping_data.hex()})
        elif isinstance(ev, E.PingAckReceived):
            self.emit({"event": "ping_ack", "hex": ev.ping_data.hex()})
        elif isinstance(ev, E.ConnectionTerminated):
            obj = {"event": "goaway", "code": int(ev.error_code), "last_stream": ev.last_stream_id}
            if ev.additional_data:
                obj["debug"] = b2s(ev.additional_data)
            self.emit(obj)
        elif isinstance(ev, E.UnknownFrameReceived):
            self.emit({"event": "unknown_frame", "type": ev.frame.type})
        elif isinstance(ev, (E.PriorityUpdated, E.AlternativeServiceAvailable)):
            pass
        elif isinstance(ev, E.PushedStreamReceived):
            self.emit({"event": "push", "stream": ev.parent_stream_id, "pushed": ev.pushed_stream_id})
        else:
            self.emit({"event": type(ev).__name__})

    def wait_for(self, name, stream, timeout):
        key = (name, stream)
        end = time.monotonic() + timeout
        while True:
            start = self.cursor.get(key, 0)
            for i in range(start, len(self.events)):
                en, es = self.events[i]
                if en == name and (stream is None or es == stream):
                    self.cursor[key] = i + 1
                    return True
            self.cursor[key] = len(self.events)
            left = end - time.monotonic()
            if left <= 0 or not self.socket_open:
                return False
            self.pump(min(left, 0.05))

    def wait_settings(self, timeout=10.0):
        if self.got_settings:
            return
        end = time.monotonic() + timeout
        while not self.got_settings and self.socket_open and time.monotonic() < end:
            self.pump(0.05)
        if not self.got_settings:
            self.emit({"event": "timeout", "waited": "settings"})
        # treat as done either way so we only wait once
        self.got_settings = True

    # ---- ops ----
    def op_request(self, st):
        headers = [(s2b(n), s2b(v)) for n, v in st.get("headers", [])]
        end_stream = bool(st.get("end_stream", False))
        sid = st.get("stream")
        if sid is None:
            sid = self.conn.get_next_available_stream_id()
        try:
            self.conn.send_headers(sid, headers, end_stream=end_stream)
        except (h2.exceptions.ProtocolError, ValueError, KeyError) as e:
            # h2 refused (id order, state...): encode with h2's own HPACK encoder so that the
            # dynamic table stays in step, and send the frame raw.
            f = HeadersFrame(sid)
            f.data = self.conn.encoder.encode(headers)
            f.flags.add("END_HEADERS")
            if end_stream:
                f.flags.add("END_STREAM")
            self.write_raw(f.serialize())
            self.emit({"event": "note", "message": "h2 refused HEADERS (%r); sent raw" % (e,),
                       "stream": sid})

    def op_data(self, st):
        sid = st["stream"]
        end_stream = bool(st.get("end_stream", False))
        ignore_flow = bool(st.get("ignore_flow", False))
        if "hex" in st:
            chunks = [bytes.fromhex(st["hex"])]
        else:
            chunks = [bytes(int(st.get("size", 0)))] * int(st.get("repeat", 1))
        wait_timeout = float(st.get("timeout", 10))
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            es = end_stream and last
            if ignore_flow:
                f = DataFrame(sid)
                f.data = chunk
                if es:
                    f.flags.add("END_STREAM")
                self.write_raw(f.serialize())
                if i % 64 == 63:
                    self.pump(0)
                continue
            maxf = self.conn.max_outbound_frame_size
            pieces = [chunk[o:o + maxf] for o in range(0, len(chunk), maxf)] or [b""]
            for j, piece in enumerate(pieces):
                pes = es and j == len(pieces) - 1
                end = time.monotonic() + wait_timeout
                while True:
                    try:
                        win = self.conn.local_flow_control_window(sid)
                    except h2.exceptions.ProtocolError as e:
                        self.emit({"event": "error", "stream": sid,
                                   "message": "data on stream %d: %r" % (sid, e)})
                        return
                    if win >= len(piece):
                        break
                    if time.monotonic() >= end or not self.socket_open:
                        self.emit({"event": "timeout", "waited": "window", "stream": sid,
                                   "frames_sent": i, "window": win})
                        return
                    self.pump(0.05)
                try:
                    self.conn.send_data(sid, piece, end_stream=pes)
                except h2.exceptions.ProtocolError as e:
                    self.emit({"event": "error", "stream": sid,
                               "message": "data on stream %d: %r" % (sid, e)})
                    return
            self.pump(0)

    def op_reset(self, st):
        sid = st["stream"]
        code = int(st.get("code", 8))
        try:
            self.conn.reset_stream(sid, error_code=code)
        except h2.exceptions.ProtocolError as e:
            f = RstStreamFrame(sid)
            f.error_code = code
            self.write_raw(f.serialize())
            self.emit({"event": "note", "message": "h2 refused RST_STREAM (%r); sent raw" % (e,),
                       "stream": sid})

    def op_open_reset_loop(self, st):
        headers = [(s2b(n), s2b(v)) for n, v in st.get("headers", [])]
        count = int(st.get("count", 1))
        code = int(st.get("code", 8))
        done = 0
        for i in range(count):
            if not self.socket_open:
                break
            try:
                sid = self.conn.get_next_available_stream_id()
                self.conn.send_headers(sid, headers, end_stream=False)
                self.conn.reset_stream(sid, error_code=code)
            except h2.exceptions.ProtocolError as e:
                self.emit({"event": "error", "message": "open_reset_loop stopped: %r" % (e,)})
                break
            done += 1
            if i % 50 == 49:
                self.pump(0)
        self.pump(0)
        self.emit({"event": "reset_loop_done", "count": done})

    def op_window(self, st):
        initial = int(st.get("initial", 0))
        self.ack_data = bool(st.get("ack", initial > 0))
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial})

    def op_settings(self, st):
        self.conn.update_settings({setting_key(k): int(v) for k, v in st.get("values", {}).items()})

    def op_window_update(self, st):
        f = WindowUpdateFrame(int(st.get("stream", 0)))
        f.window_increment = int(st["increment"])
        self.write_raw(f.serialize())

    def op_ping(self, st):
        f = PingFrame(0)
        f.opaque_data = bytes.fromhex(st.get("hex", "00" * 8))
        self.write_raw(f.serialize())

    def op_close(self, st):
        if not self.broken:
            try:
                self.conn.close_connection(error_code=int(st.get("code", 0)))
            except h2.exceptions.ProtocolError:
                pass
        self.flush_h2()
        end = time.monotonic() + 2
        while self.outbuf and self.socket_open and time.monotonic() < end:
            self.pump(0.02)
        if self.socket_open:
            if not isinstance(self.sock, ssl.SSLSocket):
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            # a short linger to print what the server still says
            self.pump(float(st.get("linger", 0.2)))
        self.on_closed("local")

    SENDING = {"request", "data", "reset", "open_reset_loop", "window_update", "ping", "raw"}

    def run(self, steps):
        no_wait = False
        for n, st in enumerate(steps):
            op = st.get("op")
            if op == "no_wait_settings":
                no_wait = True
                continue
            if op in self.SENDING and not no_wait:
                self.wait_settings()
            if op in self.SENDING and not self.socket_open:
                self.emit({"event": "error", "message": "step %d (%s): connection is closed" % (n, op)})
                continue
            try:
                if op == "request":
                    self.op_request(st)
                elif op == "data":
                    self.op_data(st)
                elif op == "reset":
                    self.op_reset(st)
                elif op == "wait":
                    name = st.get("event", "response")
                    stream = st.get("stream")
                    if not self.wait_for(name, stream, float(st.get("timeout", 5))):
                        obj = {"event": "timeout", "waited": name}
                        if stream is not None:
                            obj["stream"] = stream
                        self.emit(obj)
                elif op == "sleep":
                    self.pump(float(st.get("seconds", 0)))
                elif op == "open_reset_loop":
                    self.op_open_reset_loop(st)
                elif op == "window":
                    self.op_window(st)
                elif op == "settings":
                    self.op_settings(st)
                elif op == "window_update":
                    self.op_window_update(st)
                elif op == "ping":
                    self.op_ping(st)
                elif op == "raw":
                    self.write_raw(bytes.fromhex(st["hex"]))
                elif op == "close":
                    self.op_close(st)
                else:
                    self.emit({"event": "error", "message": "step %d: unknown op %r" % (n, op)})
            except GlobalTimeout:
                raise
            except Exception as e:  # keep going: the peer must not die on odd input
                self.emit({"event": "error", "message": "step %d (%s): %r" % (n, op, e)})
            self.pump(0)
        self.pump(0.05)


def main(argv):
    args = list(argv)
    use_tls = "--tls" in args
    if use_tls:
        args.remove("--tls")
    gt = 20.0
    if "--timeout" in args:
        i = args.index("--timeout")
        gt = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.stderr.write("usage: h2peer.py HOST PORT [--tls] [--timeout SECONDS] < script.json\n")
        return 2
    host, port = args[0], int(args[1])
    started = time.monotonic()
    try:
        steps = json.load(sys.stdin)
        if not isinstance(steps, list):
            raise ValueError("script must be a JSON list")
    except Exception as e:
        out({"event": "error", "message": "bad script: %r" % (e,)})
        out({"event": "done"})
        return 0
    peer = None
    try:
        peer = Peer(host, port, use_tls, gt)
        peer.run(steps)
    except GlobalTimeout:
        out({"event": "timeout_global"})
        return 0
    except Exception as e:
        out({"event": "error", "message": "%s: %s" % (type(e).__name__, e)})
        if time.monotonic() - started >= gt:
            out({"event": "timeout_global"})
            return 0
    finally:
        if peer is not None and peer.socket_open:
            try:
                peer.sock.close()
            except OSError:
                pass
    out({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

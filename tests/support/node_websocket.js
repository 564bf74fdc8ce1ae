// A WebSocket for Node.js without one of its own (before 20.10; Debian 12 ships 18), just enough
// for the wiki's example: connect over ws://, onopen, send text, onmessage for text frames, answer
// pings, close. tests/protocol/test_wiki_example.py loads it with --require; where Node has a WebSocket
// (with --experimental-websocket, or from 22 on) this file does nothing.
'use strict';
if (typeof globalThis.WebSocket === 'undefined') {
  const net = require('net');
  const crypto = require('crypto');

  class WebSocket {
    constructor(address) {
      const url = new URL(address);
      if (url.protocol !== 'ws:') throw new Error(`only ws:// URLs here, not ${url.protocol}`);
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      this._buffer = Buffer.alloc(0);
      this._open = false;
      const key = crypto.randomBytes(16).toString('base64');
      this._socket = net.connect(Number(url.port || 80), url.hostname, () => {
        this._socket.write(
          `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      this._socket.on('data', (chunk) => this._receive(chunk));
      this._socket.on('close', () => this.onclose && this.onclose({}));
    }

    send(text) { this._write(0x1, Buffer.from(text)); }

    close() { this._write(0x8, Buffer.from([0x03, 0xe8])); }  // 1000, normal closure

    _write(opcode, payload) {
      let header;
      if (payload.length < 126) {
        header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
      } else if (payload.length < 65536) {
        header = Buffer.from([0x80 | opcode, 0x80 | 126, 0, 0]);
        header.writeUInt16BE(payload.length, 2);
      } else {
        header = Buffer.alloc(10);
        header[0] = 0x80 | opcode;
        header[1] = 0x80 | 127;
        header.writeBigUInt64BE(BigInt(payload.length), 2);
      }
      const mask = crypto.randomBytes(4);  // a client masks every frame (RFC 6455 5.3)
      const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]));
      this._socket.write(Buffer.concat([header, mask, masked]));
    }

    _receive(chunk) {
      this._buffer = Buffer.concat([this._buffer, chunk]);
      if (!this._open) {
        const end = this._buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const status = this._buffer.subarray(0, end).toString().split('\r\n')[0];
        if (!status.startsWith('HTTP/1.1 101')) {
          console.error(`handshake refused: ${status}`);
          this._socket.destroy();
          return;
        }
        this._buffer = this._buffer.subarray(end + 4);
        this._open = true;
        if (this.onopen) this.onopen({});
      }
      while (this._buffer.length >= 2) {
        const opcode = this._buffer[0] & 0x0f;
        let length = this._buffer[1] & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (this._buffer.length < 4) return;
          length = this._buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (this._buffer.length < 10) return;
          length = Number(this._buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (this._buffer.length < offset + length) return;
        const payload = this._buffer.subarray(offset, offset + length);
        this._buffer = this._buffer.subarray(offset + length);
        if (opcode === 0x1 && this.onmessage) this.onmessage({ data: payload.toString() });
        else if (opcode === 0x9) this._write(0xa, payload);
        else if (opcode === 0x8) this._socket.end();
      }
    }
  }

  globalThis.WebSocket = WebSocket;
}

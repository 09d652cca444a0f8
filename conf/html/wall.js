/*
 * wall.js: the camera wall.  One request to the wall location
 * (kafka_stream_wall) brings the frames of every camera: a
 * multipart/x-mixed-replace stream whose parts each start with an
 * "X-Key:" line, the camera's key percent-encoded.  It is read with
 * fetch() and a ReadableStream, cut into parts here, and each part is
 * drawn into its camera's tile (createImageBitmap on a canvas): over
 * HTTP/1.1 a browser opens at most six connections to a host, and a
 * wall of <img> streams would need one each.
 *
 * A tile appears with a camera's first frame.  Each tile draws its
 * newest frame only (one decode at a time; a frame that comes meanwhile
 * replaces the one waiting), and none while the page is hidden.  The
 * stream reconnects as the single view does: at once after a clean end
 * (nginx reloaded), else after 1, 2, 4 ... 10 s; a stream that brings
 * no part for a while is stalled and opened again.
 *
 * Keys are shown as text (textContent), never as markup.  A key is kept
 * in the form the stream gives it (X-Key: every byte but A-Z a-z 0-9
 * - . _ ~ as %XX), which is also what ?keys= and the page's #cam= take.
 *
 * Where a browser cannot read a stream (no ReadableStream or no
 * createImageBitmap), or with ?wall=img in the page's address, the
 * tiles are plain <img> elements, the cameras listed by the status: the
 * first four each the camera's ordinary stream (a connection each, of
 * the six a browser opens to a host over HTTP/1.1: one is left for the
 * status, one for the snapshots), the others its snapshot, again every
 * two seconds.
 *
 * Used by viewer.js: KafkaWall.create(container, options), and the key
 * helpers in KafkaWall.keys.
 */

(function () {
    'use strict';

    var STALL_MS = 5000;         /* no part so long: reconnect */
    var STALL_MAX_MS = 60000;
    var RETRY_MAX_MS = 10000;
    var MAX_PART = 64 << 20;     /* a part larger than this is an error */
    var MAX_TILES = 256;
    var IMG_STREAMS = 4;         /* <img> tiles that are streams */
    var IMG_REFRESH_MS = 2000;   /* the others: a snapshot this often */
    var LABEL_MAX = 120;         /* characters of a key on a tile */

    /* in the order of their names, cam2 before cam10 */
    var compare = typeof Intl === 'object' && Intl.Collator
                  ? new Intl.Collator(undefined, { numeric: true }).compare
                  : function (a, b) { return a < b ? -1 : a > b ? 1 : 0; };

    var utf8 = typeof TextDecoder === 'function' ? new TextDecoder() : null;

    function ascii(s) {
        var b = new Uint8Array(s.length), i;

        for (i = 0; i < s.length; i++) {
            b[i] = s.charCodeAt(i) & 0x7f;
        }

        return b;
    }

    var CRLF = ascii('\r\n');
    var CRLFCRLF = ascii('\r\n\r\n');


    /* keys: their X-Key form, their bytes, their text */

    var UNRESERVED = /^[A-Za-z0-9._~-]$/;

    function encodeBytes(bytes) {
        var i, c, s = '';

        for (i = 0; i < bytes.length; i++) {
            c = String.fromCharCode(bytes[i]);
            s += UNRESERVED.test(c)
                 ? c : '%' + (bytes[i] < 16 ? '0' : '')
                       + bytes[i].toString(16).toUpperCase();
        }

        return s;
    }

    /* "%41b" -> [0x41, 0x62]; other characters as their UTF-8 bytes */
    function decodeBytes(s) {
        var out = [], chars, i, c, e;

        /* %XX, a character of two UTF-16 units, any other one */
        chars = s.match(
                    /%[0-9A-Fa-f]{2}|[\uD800-\uDBFF][\uDC00-\uDFFF]|[\s\S]/g)
                || [];

        for (i = 0; i < chars.length; i++) {
            c = chars[i];

            if (c.length === 3) {
                out.push(parseInt(c.slice(1), 16));
                continue;
            }

            try {
                e = encodeURIComponent(c);
            } catch (err) {
                e = '%EF%BF%BD';    /* a lone surrogate */
            }

            if (e.charAt(0) !== '%') {
                out.push(e.charCodeAt(0));
                continue;
            }

            e.slice(1).split('%').forEach(function (h) {
                out.push(parseInt(h, 16));
            });
        }

        return new Uint8Array(out);
    }

    /* whatever form (a #cam= value, the X-Key), the X-Key form */
    function canonical(s) {
        return encodeBytes(decodeBytes(s));
    }

    /* a status key: JSON gave each byte as one character (\u00XX) */
    function fromLatin1(s) {
        var bytes = new Uint8Array(s.length), i;

        for (i = 0; i < s.length; i++) {
            bytes[i] = s.charCodeAt(i) & 0xff;
        }

        return encodeBytes(bytes);
    }

    /* for people: UTF-8, control characters made visible */
    function text(key) {
        var t, bytes = decodeBytes(key);

        if (utf8) {
            t = utf8.decode(bytes);
        } else {
            try {
                t = decodeURIComponent(encodeBytes(bytes));
            } catch (e) {
                t = String.fromCharCode.apply(null, bytes);
            }
        }

        t = t.replace(/[\u0000-\u001f\u007f]/g, '\ufffd');

        return t.length > LABEL_MAX ? t.slice(0, LABEL_MAX) + '\u2026' : t;
    }

    /* the ordinary stream (kafka_stream_key $arg_id) finds it as it is */
    function plain(key) {
        return key.indexOf('%') < 0;
    }


    /*
     * The parts of a multipart stream, as bytes come: onPart(headers,
     * bytes) for each complete one (headers: lower-case names; bytes: a
     * view valid during the call), or an error thrown.
     */

    function Parser(boundary, onPart) {
        this.delim = ascii('--' + boundary);
        this.onPart = onPart;
        this.buf = new Uint8Array(1 << 16);
        this.start = 0;
        this.end = 0;
        this.state = 'boundary';
        this.headers = null;
        this.length = 0;
    }

    Parser.prototype.push = function (chunk) {
        var need = this.end - this.start + chunk.length, grown;

        if (this.end + chunk.length > this.buf.length) {
            if (need > this.buf.length) {
                grown = new Uint8Array(Math.max(need, 2 * this.buf.length));
                grown.set(this.buf.subarray(this.start, this.end));
                this.buf = grown;
            } else {
                this.buf.copyWithin(0, this.start, this.end);
            }
            this.end -= this.start;
            this.start = 0;
        }

        this.buf.set(chunk, this.end);
        this.end += chunk.length;

        while (this.step()) { /* as far as the bytes go */ }
    };

    /* where "seq" starts in the buffer from "from", or -1 */
    Parser.prototype.find = function (seq, from) {
        var b = this.buf, i, j, n = seq.length;

        for (i = from; i + n <= this.end; i++) {
            for (j = 0; j < n && b[i + j] === seq[j]; j++) { /* match */ }
            if (j === n) {
                return i;
            }
        }

        return -1;
    };

    /* one step of the state machine: false when it needs more bytes */
    Parser.prototype.step = function () {
        var at, eol, lines, i, m, h, length;

        switch (this.state) {

        case 'boundary':
            /* "--boundary", then CRLF (a part follows) or "--" (the end) */
            at = this.find(this.delim, this.start);
            if (at < 0 || at + this.delim.length + 2 > this.end) {
                return false;
            }
            at += this.delim.length;
            if (this.buf[at] === 45 && this.buf[at + 1] === 45) {
                this.state = 'done';
                return false;
            }
            eol = this.find(CRLF, at);
            if (eol < 0) {
                return false;
            }
            this.start = eol + 2;
            this.state = 'headers';
            return true;

        case 'headers':
            at = this.find(CRLFCRLF, this.start - 2);
            if (at < 0) {
                if (this.end - this.start > 65536) {
                    throw new Error('part headers too long');
                }
                return false;
            }
            h = {};
            lines = String.fromCharCode.apply(null,
                         this.buf.subarray(this.start, Math.max(at,
                                                               this.start)))
                    .split('\r\n');
            for (i = 0; i < lines.length; i++) {
                m = /^([^:]+):\s*(.*?)\s*$/.exec(lines[i]);
                if (m) {
                    h[m[1].toLowerCase()] = m[2];
                }
            }
            length = /^\d+$/.test(h['content-length'] || '')
                     ? parseInt(h['content-length'], 10) : -1;
            if (length > MAX_PART) {
                throw new Error('a part of ' + length + ' bytes');
            }
            this.headers = h;
            this.length = length;
            this.start = Math.max(at + 4, this.start);
            this.state = 'body';
            return true;

        case 'body':
            if (this.length < 0) {
                /* no Content-Length: up to the next boundary */
                at = this.find(this.delim, this.start);
                if (at < 0) {
                    return false;
                }
                this.length = Math.max(at - 2 - this.start, 0);
            }
            if (this.end - this.start < this.length) {
                return false;
            }
            this.onPart(this.headers,
                        this.buf.subarray(this.start,
                                          this.start + this.length));
            this.start += this.length;
            this.state = 'boundary';
            return true;

        default:
            return false;
        }
    };


    /* a tile: the picture ("media"), the key as text below; a click opens */

    function figure(key, media, options) {
        var fig, cap, label;

        fig = document.createElement('figure');
        fig.className = 'tile';
        fig.dataset.key = key;
        fig.tabIndex = 0;
        fig.setAttribute('role', 'button');

        cap = document.createElement('figcaption');
        label = document.createElement('span');
        label.className = 'key';
        label.textContent = text(key);
        fig.title = label.textContent;
        cap.appendChild(label);

        fig.appendChild(media);
        fig.appendChild(cap);

        fig.addEventListener('click', function () {
            if (options.onOpen) {
                options.onOpen(key);
            }
        });
        fig.addEventListener('keydown', function (e) {
            if ((e.key === 'Enter' || e.key === ' ') && options.onOpen) {
                e.preventDefault();
                options.onOpen(key);
            }
        });

        return fig;
    }


    /*
     * A wall in "container": create(container, {
     *     url: the wall location (with ?keys=, ?width= ... as wanted),
     *     solo: one big tile (the single view of a key that the ordinary
     *           stream cannot name),
     *     onOpen: function (key): a tile was clicked,
     *     onState: function (text, cls): connecting, live, retrying ...
     * }) -> { start(), stop(), tiles(), blob(key) }
     */

    function create(container, options) {
        var tiles = {};             /* by key */
        var count = 0;
        var conn = null;            /* { abort, parts, opened, last } */
        var retries = 0;
        var retryTimer = null;
        var watchdog = null;
        var stallMs = STALL_MS;
        var reconnects = 0;
        var stopped = true;

        function state(t, cls) {
            container.dataset.state = cls;
            if (options.onState) {
                options.onState(t, cls);
            }
        }

        function tileOf(key) {
            var tile, fig, canvas, after, k;

            if (tiles[key]) {
                return tiles[key];
            }

            if (count >= MAX_TILES) {
                return null;
            }

            canvas = document.createElement('canvas');
            canvas.width = 16;
            canvas.height = 9;

            fig = figure(key, canvas, options);

            tile = { key: key, fig: fig, canvas: canvas, frames: 0,
                     busy: false, pending: null, last: null };

            /* in the order of their names, cam2 before cam10 */
            after = null;
            for (k in tiles) {
                if (compare(text(k), text(key)) > 0
                    && (after === null
                        || compare(text(k), text(after)) < 0))
                {
                    after = k;
                }
            }
            container.insertBefore(fig, after ? tiles[after].fig : null);

            tiles[key] = tile;
            count++;
            container.dataset.tiles = count;

            return tile;
        }

        function draw(tile) {
            var blob = tile.pending;

            if (tile.busy || blob === null || document.hidden) {
                return;
            }

            tile.pending = null;
            tile.busy = true;

            createImageBitmap(blob)
                .then(function (bitmap) {
                    var c = tile.canvas;

                    if (c.width !== bitmap.width
                        || c.height !== bitmap.height)
                    {
                        c.width = bitmap.width;
                        c.height = bitmap.height;
                    }

                    c.getContext('2d').drawImage(bitmap, 0, 0);
                    bitmap.close();

                    tile.frames++;
                    tile.fig.dataset.frames = tile.frames;
                }, function () {
                    tile.fig.dataset.bad = (+tile.fig.dataset.bad || 0) + 1;
                })
                .then(function () {
                    tile.busy = false;
                    draw(tile);
                });
        }

        function onPart(headers, bytes) {
            var key = headers['x-key'], tile, blob;

            if (key === undefined || !/^[A-Za-z0-9._~%-]+$/.test(key)) {
                return;     /* not a wall's part: nothing to draw it in */
            }

            tile = tileOf(key);
            if (tile === null) {
                return;
            }

            blob = new Blob([bytes], { type: headers['content-type']
                                             || 'image/jpeg' });
            tile.last = blob;
            tile.pending = blob;
            draw(tile);

            conn.parts++;
            conn.last = Date.now();
            container.dataset.parts = (+container.dataset.parts || 0) + 1;

            if (conn.parts === 1) {
                retries = 0;
                state('live', 'live');
            }
        }

        function retryLater(reason, now) {
            var delay = now ? 0 : Math.min(1000 * Math.pow(2, retries),
                                           RETRY_MAX_MS);

            close();

            if (stopped || retryTimer) {
                return;
            }

            if (!now) {
                retries++;
            }

            state(reason + (delay ? ', retrying in ' + delay / 1000 + ' s'
                                  : ', reconnecting'), 'wait');
            retryTimer = setTimeout(function () {
                retryTimer = null;
                connect(reason);
            }, delay);
        }

        function close() {
            if (conn) {
                conn.abort.abort();
                conn = null;
            }
            clearInterval(watchdog);
            watchdog = null;
        }

        function connect(reason) {
            var abort = new AbortController();
            var me = { abort: abort, parts: 0, opened: Date.now(),
                       last: Date.now() };

            close();
            conn = me;

            if (reason) {
                reconnects++;
                container.dataset.reconnects = reconnects;
                container.dataset.reason = reason;
            }

            state(reason ? 'reconnecting' : 'connecting', 'wait');

            watchdog = setInterval(function () {
                if (conn === me && !document.hidden
                    && Date.now() - me.last > stallMs)
                {
                    stallMs = Math.min(stallMs * 2, STALL_MAX_MS);
                    retryLater('stream stalled', true);
                }
            }, 1000);

            fetch(options.url, { cache: 'no-store', signal: abort.signal })
                .then(function (r) {
                    var type = r.headers.get('Content-Type') || '';
                    var m = /boundary="?([^";]+)"?/.exec(type);

                    if (!r.ok) {
                        return r.text().then(function (why) {
                            throw new Error('HTTP ' + r.status
                                            + (why ? ': ' + why.trim() : ''));
                        });
                    }

                    if (!/^multipart\//.test(type) || !m) {
                        throw new Error('not a multipart stream');
                    }

                    return read(me, r.body.getReader(),
                                new Parser(m[1], onPart));
                })
                .then(function () {
                    if (conn !== me) {
                        return;
                    }
                    /* the server ended it (a reload): again at once, once */
                    retryLater('stream ended', me.parts > 0);
                }, function (e) {
                    if (conn !== me) {
                        return;     /* aborted by us */
                    }
                    retryLater(e.message || 'no stream', false);
                });
        }

        function read(me, reader, parser) {
            return reader.read().then(function (chunk) {
                if (conn !== me) {
                    reader.cancel();
                    return;
                }
                if (chunk.done) {
                    return;
                }
                parser.push(chunk.value);
                if (parser.state === 'done') {
                    reader.cancel();
                    return;
                }
                return read(me, reader, parser);
            });
        }

        document.addEventListener('visibilitychange', function () {
            var k;

            if (!document.hidden) {
                for (k in tiles) {
                    draw(tiles[k]);
                }
            }
        });

        return {
            start: function () {
                stopped = false;
                retries = 0;
                stallMs = STALL_MS;
                connect(null);
            },
            stop: function () {
                stopped = true;
                clearTimeout(retryTimer);
                retryTimer = null;
                close();
            },
            tiles: function () {
                return Object.keys(tiles);
            },
            blob: function (key) {
                return tiles[key] ? tiles[key].last : null;
            }
        };
    }


    /*
     * The fallback: a plain <img> per camera, the cameras from the
     * status; the first IMG_STREAMS the camera's ordinary stream (one
     * connection each), the others its snapshot, refreshed.  Keys the
     * ordinary stream cannot name get no tile.
     */

    function createImages(container, options) {
        var tiles = {};
        var timer = null;
        var stopped = true;

        function add(key) {
            var img, stream, url;

            if (tiles[key] || !plain(key)) {
                return;
            }

            /* a stream while connections are left, else snapshots */

            stream = Object.keys(tiles).length < IMG_STREAMS;
            url = stream ? options.camera : options.snapshot;

            img = document.createElement('img');
            img.alt = text(key);
            img.dataset.kind = stream ? 'stream' : 'snapshot';

            function again() {
                setTimeout(function () {
                    if (!stopped && tiles[key] && tiles[key].img === img) {
                        img.src = url(key) + '&_=' + Date.now().toString(36);
                    }
                }, IMG_REFRESH_MS);
            }

            /* a stream that failed, or the next snapshot */
            img.addEventListener('error', again);
            if (!stream) {
                img.addEventListener('load', again);
            }

            tiles[key] = { fig: figure(key, img, options), img: img };
            container.appendChild(tiles[key].fig);
            img.src = url(key);
            container.dataset.tiles = Object.keys(tiles).length;
        }

        function poll() {
            fetch(options.status, { cache: 'no-store' })
                .then(function (r) { return r.ok ? r.json() : null; })
                .then(function (st) {
                    (st && st.streams || []).forEach(function (s) {
                        (s.keys || []).map(fromLatin1).sort(function (a, b) {
                            return compare(text(a), text(b));
                        }).forEach(add);
                    });
                    options.onState(Object.keys(tiles).length
                                    ? 'live' : 'no cameras yet',
                                    Object.keys(tiles).length
                                    ? 'live' : 'wait');
                }, function () { /* the next poll */ })
                .then(function () {
                    if (!stopped) {
                        timer = setTimeout(poll, 5000);
                    }
                });
        }

        return {
            start: function () {
                stopped = false;
                poll();
            },
            stop: function () {
                var k;

                stopped = true;
                clearTimeout(timer);
                for (k in tiles) {
                    tiles[k].img.removeAttribute('src');
                    tiles[k].fig.remove();
                }
                tiles = {};
                container.dataset.tiles = 0;
            },
            tiles: function () {
                return Object.keys(tiles);
            },
            blob: function () {
                return null;
            }
        };
    }


    window.KafkaWall = {
        /* can this browser read a stream and draw its parts? */
        streams: typeof ReadableStream === 'function'
                 && typeof fetch === 'function'
                 && typeof Response === 'function'
                 && 'body' in Response.prototype
                 && typeof createImageBitmap === 'function'
                 && typeof TextDecoder === 'function'
                 && typeof AbortController === 'function',
        create: create,
        createImages: createImages,
        keys: {
            canonical: canonical,
            fromLatin1: fromLatin1,
            text: text,
            plain: plain
        },
        Parser: Parser
    };
}());

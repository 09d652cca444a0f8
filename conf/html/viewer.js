/*
 * viewer.js: shows a multipart/x-mixed-replace stream in an <img> and
 * keeps it going.
 *
 * A browser does not reconnect an <img> by itself, so this does, when
 *   - the image fails (nginx down, 503): again after 1, 2, 4 ... 10 s;
 *   - nginx was reloaded: its old workers end their streams, and the
 *     status endpoint then names none of the workers it named when this
 *     stream was opened;
 *   - the server counts no viewer on our location for a few polls;
 *   - the stream stalls: the server has fresh frames but the picture has
 *     not changed for STALL_MS.  Browsers do not tell when a part of a
 *     multipart image arrives (Chromium fires "load" once per stream,
 *     Firefox not reliably), so the picture itself is looked at: a tiny
 *     canvas copy of it, compared from one poll to the next.  That
 *     works where the copy is the frame on screen (Chromium); Firefox
 *     copies a stale frame, so the check is used only once the copy has
 *     changed at TRACKING_POLLS polls in a row.  A stall that a
 *     reconnect does not cure (a camera showing a still picture) makes
 *     the next one wait twice as long, up to STALL_MAX_MS.
 * Reconnecting sets img.src again, with a query that defeats caches.
 *
 * The figures and the camera list come from the status endpoint; when
 * it is not allowed (conf/nginx.conf lets only localhost read it) the
 * page still shows the stream and says why the figures are missing.
 *
 * The wall (wall.js): with data-wall on <body> the page opens on every
 * camera at once, a tile each, from one stream; a click on a tile shows
 * that camera here (#cam=KEY, its ordinary stream), and the browser's
 * back button, or "All cameras", returns to the wall.  The single view
 * is stopped while the wall shows, and the wall while a camera shows:
 * one stream at a time.  A camera whose key the ordinary stream cannot
 * name (a key of other bytes than A-Z a-z 0-9 - . _ ~: kafka_stream_key
 * $arg_id takes the argument as it is) is shown from the wall's stream
 * of that one key instead, without replay.  Keys are kept as the wall
 * gives them, percent-encoded, and shown as text.
 *
 * Back / Go replay from Kafka's history (kafka_stream_replay): the stream
 * is asked for with ?since=-SECONDS, seconds before the server's "now",
 * so that the browser's clock does not matter.  At the original speed a
 * replay stays that far behind, so a reconnect asks for the same; Live
 * returns to the live stream.  A replay the server refuses (a time before
 * what Kafka keeps, say) is reported and the page stays live.
 */

(function () {
    'use strict';

    var POLL_MS = 1000;          /* status polling */
    var POLL_DENIED_MS = 15000;  /* ... when status is not ours to read */
    var STALL_MS = 5000;         /* picture unchanged so long: reconnect */
    var STALL_MAX_MS = 60000;
    var TRACKING_POLLS = 3;
    var FRESH_MS = 2000;         /* the server's latest frame is fresh */
    var NO_VIEWER_POLLS = 3;     /* polls that count no viewer: reconnect */
    var RETRY_MAX_MS = 10000;

    var body = document.body;
    var urls = {
        stream: body.dataset.stream,
        camera: body.dataset.camera,
        snapshot: body.dataset.snapshot,
        status: body.dataset.status,
        wall: body.dataset.wall || ''
    };
    var wallArgs = body.dataset.wallArgs || '';
    var Wall = window.KafkaWall;
    var keyText = Wall.keys.text;
    var plainKey = Wall.keys.plain;
    var topic = body.dataset.topic || '';
    var replayOn = body.dataset.replay !== 'off';

    var img = document.getElementById('stream');
    var stateEl = document.getElementById('state');
    var cameraBox = document.getElementById('camera-box');
    var cameraSel = document.getElementById('camera');
    var note = document.getElementById('note');
    var timeForm = document.getElementById('time');
    var backMinutes = document.getElementById('back-minutes');
    var sincePicker = document.getElementById('since');
    var liveButton = document.getElementById('live');
    var wallEl = document.getElementById('wall');
    var wallState = document.getElementById('wall-state');
    var single = document.getElementById('single');
    var soloEl = document.getElementById('solo');
    var toWall = document.getElementById('to-wall');
    var snapshotButton = document.getElementById('snapshot');

    var view = null;                /* 'wall' or 'single' */
    var wall = null;                /* the wall, once shown */
    var solo = null;                /* a camera shown from the wall stream */

    /* the camera's key as the wall gives it; '' is every frame: urls.stream */
    var camera = '';
    var chosen = false;             /* by the user, not by this script */
    var behind = null;              /* replaying: seconds behind live */
    var keys = [];
    var lastCount = null;           /* frames_in at the previous poll */

    var conn = null;                /* the stream currently open */
    var stallMs = STALL_MS;
    var tracking = 0;               /* polls in a row the copy changed */
    var retries = 0;
    var retryTimer = null;
    var reconnects = 0;

    function cameraFromHash() {
        var m = /(?:^#|&)cam=([^&]*)/.exec(location.hash);
        return m ? Wall.keys.canonical(m[1]) : '';
    }

    /* the wall, unless a camera (or every frame: #all) is asked for */
    function viewFromHash() {
        return urls.wall && !/(?:^#|&)(?:cam=|all)/.test(location.hash)
               ? 'wall' : 'single';
    }

    function streamUrl() {
        var url = camera ? urls.camera + '?id=' + camera : urls.stream;

        if (behind !== null) {
            url += (url.indexOf('?') < 0 ? '?' : '&')
                   + 'since=-' + behind.toFixed(3);
        }

        return url;
    }

    function describe(seconds) {
        var m = Math.floor(seconds / 60), s = Math.round(seconds % 60);

        if (s === 60) {
            m++;
            s = 0;
        }

        return m ? m + ' min' + (s ? ' ' + s + ' s' : '') : s + ' s';
    }

    function setState(text, cls) {
        stateEl.textContent = text;
        stateEl.className = 'state ' + cls;
        body.dataset.state = cls;
    }

    function connect(reason) {
        var url = streamUrl();

        clearTimeout(retryTimer);
        retryTimer = null;

        if (camera && !plainKey(camera)) {
            connectSolo();
            return;
        }

        if (reason) {
            reconnects++;
            img.dataset.reconnects = reconnects;
            img.dataset.reason = reason;
            console.log('viewer: reconnecting: ' + reason);
        }

        conn = {
            opened: Date.now(),
            loads: 0,
            picture: null,          /* checksum of the picture's copy */
            changed: Date.now(),    /* when it last changed */
            pids: null,
            noViewer: 0
        };

        setState(reason ? 'reconnecting' : 'connecting', 'wait');
        img.src = url + (url.indexOf('?') < 0 ? '?' : '&')
                  + '_=' + Date.now().toString(36);
    }

    function retryLater(reason) {
        var delay = Math.min(1000 * Math.pow(2, retries), RETRY_MAX_MS);

        if (retryTimer) {
            return;
        }

        retries++;
        setState(reason + ', retrying in ' + delay / 1000 + ' s', 'wait');
        retryTimer = setTimeout(function () { connect(reason); }, delay);
    }

    img.addEventListener('load', function () {
        if (conn === null) {
            return;
        }

        conn.loads++;
        retries = 0;

        if (conn.loads === 1) {
            if (behind !== null) {
                /* stays on screen: this is not what happens now */
                setState('replay, ' + describe(behind) + ' behind',
                         'replay');
                return;
            }

            setState('live', 'live');
            /* fade the label out after a moment */
            setTimeout(function () {
                if (body.dataset.state === 'live') {
                    stateEl.classList.add('quiet');
                }
            }, 0);
        }
    });

    img.addEventListener('error', function () {
        if (conn === null || !img.getAttribute('src')) {
            return;
        }

        if (behind !== null) {
            replayFailed(img.getAttribute('src'));
            return;
        }

        retryLater('no stream');
    });

    /* an <img> does not tell why: the server says it in one line */
    function replayFailed(url) {
        var abort = new AbortController();

        fetch(url, { cache: 'no-store', signal: abort.signal })
            .then(function (r) {
                if (r.ok) {
                    abort.abort();  /* it plays now: the next try will do */
                    retryLater('no stream');
                    return;
                }

                return r.text().then(function (why) {
                    note.textContent = 'replay: ' + why.trim();
                    note.hidden = false;

                    if (r.status >= 500) {
                        retryLater('no replay');
                    } else {
                        goLive();
                    }
                });
            })
            .catch(function () {
                retryLater('no stream');
            });
    }

    function goBack(seconds) {
        if (!(seconds > 0)) {
            note.textContent = 'replay: that time is not in the past';
            note.hidden = false;
            return;
        }

        behind = seconds;
        liveButton.disabled = false;
        note.hidden = true;
        retries = 0;
        connect(null);
    }

    function goLive() {
        behind = null;
        liveButton.disabled = true;
        retries = 0;
        connect(null);
    }

    /* a tiny copy of the picture, to tell whether it still changes */

    var probe = document.createElement('canvas');
    var probeCtx;

    probe.width = 32;
    probe.height = 18;
    probeCtx = probe.getContext('2d', { willReadFrequently: true });

    function pictureSum() {
        var d, i, sum = 0;

        if (!img.complete || !img.naturalWidth) {
            return null;
        }

        try {
            probeCtx.drawImage(img, 0, 0, probe.width, probe.height);
            d = probeCtx.getImageData(0, 0, probe.width, probe.height).data;
        } catch (e) {
            return null;    /* a picture from another origin: unreadable */
        }

        for (i = 0; i < d.length; i++) {
            sum = (sum * 31 + d[i]) | 0;
        }

        return sum;
    }

    /* fresh: does the server have new frames for our location? */
    function checkStall(fresh) {
        var now = Date.now(), sum;

        if (conn === null || retryTimer) {
            return;
        }

        /* a hidden tab may not decode frames: that is no stall */
        if (document.hidden) {
            conn.changed = now;
            return;
        }

        sum = pictureSum();

        if (sum !== null && sum !== conn.picture) {
            if (conn.picture !== null) {
                stallMs = STALL_MS;
                if (tracking < TRACKING_POLLS) {
                    tracking++;
                }
            }
            conn.picture = sum;
            conn.changed = now;
            return;
        }

        if (tracking < TRACKING_POLLS) {
            tracking = 0;   /* not in a row: this browser's copy lags */
            return;
        }

        if (fresh && now - conn.changed > stallMs) {
            stallMs = Math.min(stallMs * 2, STALL_MAX_MS);
            connect('stream stalled');
        }
    }


    /* the views: the wall, or one camera */

    /* the wall with its data-wall-args; one camera of it, full size */
    function wallUrl(key) {
        return urls.wall + (key ? '?keys=' + key
                                : wallArgs ? '?' + wallArgs : '');
    }

    function openCamera(key) {
        location.hash = '#cam=' + key;
    }

    function showWall() {
        var images = !Wall.streams
                     || /(?:^\?|&)wall=img(?:&|$)/.test(location.search);

        stopSingle();
        view = 'wall';
        body.dataset.view = 'wall';
        single.hidden = true;
        cameraBox.hidden = true;
        timeForm.hidden = true;
        snapshotButton.hidden = true;
        toWall.hidden = true;
        wallEl.hidden = false;
        wallState.hidden = false;

        if (wall === null) {
            var options = {
                url: wallUrl(null),
                status: urls.status,
                camera: function (key) { return urls.camera + '?id=' + key; },
                snapshot: function (key) {
                    return urls.snapshot + '?id=' + key;
                },
                onOpen: openCamera,
                onState: function (text, cls) {
                    wallState.textContent = text;
                    wallState.className = 'wall-state ' + cls;
                }
            };

            wall = images ? Wall.createImages(wallEl, options)
                          : Wall.create(wallEl, options);
            wallEl.dataset.kind = images ? 'img' : 'stream';
        }

        wall.start();
    }

    function showSingle() {
        if (wall) {
            wall.stop();
        }

        view = 'single';
        body.dataset.view = 'single';
        wallEl.hidden = true;
        wallState.hidden = true;
        single.hidden = false;
        snapshotButton.hidden = false;
        toWall.hidden = !urls.wall;
        cameraBox.hidden = keys.length < 2;
        timeForm.hidden = !replayOn || (camera !== '' && !plainKey(camera));
        connect(null);
    }

    /* the single view lets go of its stream */
    function stopSingle() {
        clearTimeout(retryTimer);
        retryTimer = null;
        conn = null;
        img.removeAttribute('src');

        if (solo) {
            solo.stop();
            solo = null;
        }

        soloEl.hidden = true;
        soloEl.textContent = '';
        img.hidden = false;
    }

    /* a camera the ordinary stream cannot name: the wall's, of one key */
    function connectSolo() {
        stopSingle();
        behind = null;
        img.hidden = true;
        soloEl.hidden = false;

        conn = {
            opened: Date.now(), loads: 0, picture: null,
            changed: Date.now(), pids: null, noViewer: 0, solo: true
        };

        solo = Wall.create(soloEl, {
            url: wallUrl(camera),
            onState: function (text, cls) {
                setState(cls === 'live' ? 'live' : text, cls);
            }
        });
        solo.start();
    }

    function route() {
        camera = cameraFromHash();
        chosen = camera !== '' || /(?:^#|&)all(?:&|$)/.test(location.hash);
        behind = null;
        liveButton.disabled = true;
        retries = 0;

        if (viewFromHash() === 'wall') {
            showWall();
        } else {
            showSingle();
        }
    }

    toWall.addEventListener('click', function () {
        location.hash = '#wall';
    });


    /* status */

    function pollStatus() {
        var next = POLL_MS;
        var fresh = true;   /* without the status, assume frames flow */
        var abort = new AbortController();
        var timeout = setTimeout(function () { abort.abort(); }, 5000);

        /* a status request that hangs must not stop the polling */
        fetch(urls.status, { cache: 'no-store', signal: abort.signal })
            .then(function (r) {
                if (r.status === 403) {
                    next = POLL_DENIED_MS;
                    throw new Error('the status endpoint is not allowed '
                                    + 'from here (see its allow lines in '
                                    + 'nginx.conf): no figures');
                }
                if (!r.ok) {
                    throw new Error('status: HTTP ' + r.status);
                }
                return r.json();
            })
            .then(function (status) {
                note.hidden = true;
                fresh = onStatus(status);
            })
            .catch(function (e) {
                note.textContent = e.message;
                note.hidden = false;
            })
            .then(function () {
                clearTimeout(timeout);
                if (view === null) {
                    /* the first answer (or failure) chose the camera */
                    route();
                }
                /* a replay may rightly stand still (a quiet camera then):
                   the live figures say nothing about it */
                if (view === 'single' && conn && !conn.solo) {
                    checkStall(fresh && behind === null);
                }
                setTimeout(pollStatus, next);
            });
    }

    /* returns whether the server has fresh frames for our location */
    function onStatus(status) {
        var pids = (status.workers || []).map(function (w) { return w.pid; });
        var mine = ourStream(status.streams || []);

        showFigures(mine, status);
        showCameras(mine);

        if (view !== 'single' || conn === null || conn.solo || retryTimer) {
            return false;
        }

        if (conn.pids === null) {
            conn.pids = pids;

        } else if (pids.length && !conn.pids.some(function (p) {
                                       return pids.indexOf(p) >= 0;
                                   }))
        {
            /* every worker we could have been talking to is gone */
            connect('nginx reloaded');
            return false;
        }

        if (mine && mine.viewers === 0
            && Date.now() - conn.opened > 2 * POLL_MS)
        {
            if (++conn.noViewer >= NO_VIEWER_POLLS) {
                connect('stream ended');
                return false;
            }

        } else {
            conn.noViewer = 0;
        }

        return mine !== null && typeof mine.latest_age_ms === 'number'
               && mine.latest_age_ms < FRESH_MS;
    }

    /*
     * Our entry in the status: the module counts per topic and partition
     * ("streams"); the page's topic is data-topic on <body>.  Without it,
     * the first entry.
     */
    function ourStream(streams) {
        var i, s, found = null;

        for (i = 0; i < streams.length; i++) {
            s = streams[i];
            if (topic && s.topic !== topic) {
                continue;
            }
            if (found === null || s.partition === 'all') {
                found = s;
            }
        }

        return found;
    }

    /* frames per second since the previous poll */
    function fpsIn(s) {
        var now = Date.now(), fps = null;

        if (typeof s.fps_in === 'number') {
            return s.fps_in;
        }

        if (lastCount && lastCount.topic === s.topic
            && s.frames_in >= lastCount.frames && now > lastCount.at)
        {
            fps = (s.frames_in - lastCount.frames) * 1000
                  / (now - lastCount.at);
        }

        lastCount = { topic: s.topic, frames: s.frames_in, at: now };
        return fps;
    }

    function brokerState(s, status) {
        var up = 0;

        if (s.broker) {
            return s.broker;
        }

        (status.workers || []).forEach(function (w) {
            up = Math.max(up, w.brokers_up || 0);
        });

        return up ? 'up' : 'down';
    }

    function text(id, value) {
        document.getElementById(id).textContent = value;
    }

    function showFigures(s, status) {
        var age, fps;

        if (s === null) {
            return;
        }

        fps = fpsIn(s);
        text('fps', fps === null ? '–' : fps.toFixed(1));
        text('viewers', s.viewers);
        text('drops', s.drops);

        age = s.latest_age_ms;
        text('age', typeof age !== 'number' ? 'no frame yet'
                    : age < 1000 ? age + ' ms'
                    : (age / 1000).toFixed(1) + ' s');

        text('broker', brokerState(s, status));
    }

    /* the selector: shown once the topic has seen several keys */
    function showCameras(s) {
        var seen = s && s.keys ? s.keys.map(Wall.keys.fromLatin1).sort()
                               : [];

        if (seen.join('\n') === keys.join('\n')) {
            return;
        }

        keys = seen;
        cameraSel.textContent = '';
        cameraSel.add(new Option('all frames', ''));
        keys.forEach(function (k) {
            cameraSel.add(new Option(keyText(k), k));
        });

        if (camera && keys.indexOf(camera) < 0) {
            cameraSel.add(new Option(keyText(camera), camera));
        }

        cameraBox.hidden = view !== 'single' || keys.length < 2;

        /* frames of several cameras in one stream flicker: pick one */
        if (view === 'single' && !chosen && camera === ''
            && keys.length >= 2)
        {
            camera = keys[0];
            if (conn !== null) {
                connect(null);
            }
        }

        cameraSel.value = camera;
    }

    cameraSel.addEventListener('change', function () {
        location.hash = cameraSel.value ? '#cam=' + cameraSel.value : '#all';
    });

    window.addEventListener('hashchange', route);

    /*
     * A page the browser keeps after it was left (the back-forward cache)
     * would keep its stream open: the stream ends when the page is left,
     * and starts again if the page is shown again.
     */

    window.addEventListener('pagehide', function () {
        if (wall) {
            wall.stop();
        }
        stopSingle();
    });

    window.addEventListener('pageshow', function (e) {
        if (e.persisted && view !== null) {
            route();
        }
    });


    /* replay: back so many minutes, from a time, or live again */

    document.getElementById('back').addEventListener('click', function () {
        goBack(parseFloat(backMinutes.value) * 60);
    });

    timeForm.addEventListener('submit', function (e) {
        var t = sincePicker.value ? new Date(sincePicker.value).getTime()
                                  : NaN;

        e.preventDefault();

        if (isNaN(t)) {
            note.textContent = 'replay: pick a date and time first';
            note.hidden = false;
            return;
        }

        goBack((Date.now() - t) / 1000);
    });

    /* the picker starts a minute ago, in local time */
    sincePicker.addEventListener('focus', function () {
        var d;

        if (sincePicker.value) {
            return;
        }

        d = new Date(Date.now() - 60000 - new Date().getTimezoneOffset()
                                          * 60000);
        sincePicker.value = d.toISOString().slice(0, 19);
    });

    liveButton.addEventListener('click', goLive);


    /* snapshot: fetch the current frame and save it as a file */

    snapshotButton.addEventListener('click', function () {
        var url = urls.snapshot + (camera ? '?id=' + camera : '');
        var frame = solo ? solo.blob(camera) : null;

        /* from the wall's stream: the frame on screen */
        if (solo) {
            if (frame) {
                save(frame);
            } else {
                note.textContent = 'no frame yet: try again in a moment';
                note.hidden = false;
            }
            return;
        }

        /* while replaying, the frame on screen is that far back */
        if (behind !== null) {
            url += (url.indexOf('?') < 0 ? '?' : '&')
                   + 'at=-' + behind.toFixed(3);
        }

        fetch(url, { cache: 'no-store' })
            .then(function (r) {
                if (r.status === 503) {
                    throw new Error('no frame yet: try again in a moment');
                }
                if (!r.ok) {
                    throw new Error('snapshot: HTTP ' + r.status);
                }
                return r.blob();
            })
            .then(save)
            .catch(function (e) {
                note.textContent = e.message;
                note.hidden = false;
            });
    });

    function save(blob) {
        var a = document.createElement('a');
        var stamp = new Date().toISOString()
                        .replace(/[:.]/g, '-').slice(0, 19);

        a.href = URL.createObjectURL(blob);
        a.download = 'snapshot-' + (camera || 'all') + '-' + stamp
                     + (blob.type === 'image/png' ? '.png' : '.jpg');
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    }


    /*
     * Start after "load": an <img> that is loading when the page loads
     * delays the load event, and a stream never finishes loading.  The
     * wall, or a camera asked for, starts at once; else the first status
     * answer comes before the stream: it tells the cameras.
     */

    function start() {
        if (urls.wall || /(?:^#|&)(?:cam=|all)/.test(location.hash)) {
            route();
        }

        pollStatus();
    }

    if (document.readyState === 'complete') {
        start();
    } else {
        window.addEventListener('load', start);
    }
}());

// loa console, speaking live (/live): the microphone is opened, then the broadcast is
// started (POST /live/start, the form with its CSRF token), then the audio goes to
// central as 16-bit mono PCM at 48 kHz, 200 ms per POST (/live/ID/audio?seq=N, the CSRF
// token in x-csrf-token), one POST at a time, until "Stop" (/live/ID/stop). Central
// encodes, chains, signs and sends it on, exactly as for `loa live`. Nothing recorded
// before central answered the start is sent. At most 4 s waits for the network; past
// that the oldest audio is dropped (and said). Every refusal is shown as central
// worded it (the page's language first).
(function () {
  'use strict';
  var form = document.querySelector('form[data-live]');
  if (!form) return;
  var RATE = 48000;
  var CHUNK = RATE / 5; // 200 ms
  var MAX_QUEUE = 20; // 4 s
  var MAX_MERGE = 5; // 1 s per POST at most, as central allows
  var words = document.getElementById('live-words').dataset;
  var stateEl = document.getElementById('live-state');
  var errorEl = document.getElementById('live-error');
  var startBtn = document.getElementById('live-start');
  var stopBtn = document.getElementById('live-stop');
  var csrf = form.querySelector('input[name=csrf]').value;
  var live = null;

  function show(text, state) {
    stateEl.textContent = text;
    stateEl.className = state;
    form.setAttribute('data-state', state);
  }
  function fail(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }
  function decimal(x) { return x.toFixed(1).replace('.', words.comma); }
  function clock(ms) {
    var s = Math.floor(ms / 1000);
    var m = Math.floor(s / 60);
    return (m < 10 ? '0' : '') + m + ':' + (s % 60 < 10 ? '0' : '') + (s % 60);
  }

  // What a refusal says: plain text as central wrote it, or the error of an HTML page.
  function explain(response) {
    if (response.type === 'opaqueredirect') return Promise.resolve(words.signin);
    var type = response.headers.get('content-type') || '';
    return response.text().then(function (body) {
      if (type.indexOf('text/html') === 0) {
        var page = new DOMParser().parseFromString(body, 'text/html');
        var e = page.querySelector('[role=alert], .error');
        if (e) return e.textContent.replace(/\s+/g, ' ').trim();
      }
      return body || 'HTTP ' + response.status;
    });
  }

  function post(url, body, type) {
    var headers = { 'x-csrf-token': csrf };
    if (type) headers['content-type'] = type;
    return fetch(url, { method: 'POST', headers: headers, body: body, redirect: 'manual' });
  }

  // Linear interpolation to 48 kHz, for a microphone the browser will not open at it.
  function Resampler(from) {
    this.step = from / RATE;
    this.t = 0;
    this.prev = 0;
  }
  Resampler.prototype.run = function (input) {
    if (this.step === 1) return input;
    var out = [];
    var t = this.t;
    while (t < input.length - 1) {
      var i = Math.floor(t);
      var a = i < 0 ? this.prev : input[i];
      out.push(a + (input[i + 1] - a) * (t - i));
      t += this.step;
    }
    this.t = t - input.length;
    this.prev = input[input.length - 1];
    return out;
  };

  function take(samples) {
    var l = live;
    if (!l || !l.id || l.stopping) return;
    samples = l.resampler.run(samples);
    for (var i = 0; i < samples.length; i++) {
      var v = Math.max(-1, Math.min(1, samples[i]));
      l.pcm[l.filled++] = v < 0 ? v * 32768 : v * 32767;
      if (l.filled === CHUNK) {
        l.queue.push(l.pcm);
        l.pcm = new Int16Array(CHUNK);
        l.filled = 0;
        if (l.queue.length > MAX_QUEUE) {
          l.queue.shift();
          l.dropped += 0.2;
        }
      }
    }
    pump();
  }

  function pump() {
    var l = live;
    if (!l || l.sending || l.queue.length === 0 || l.over) return;
    var parts = l.queue.splice(0, MAX_MERGE);
    var body = new Int16Array(parts.reduce(function (n, p) { return n + p.length; }, 0));
    parts.reduce(function (at, p) { body.set(p, at); return at + p.length; }, 0);
    l.sending = true;
    send(l, l.seq, body, 0);
  }

  function send(l, seq, body, tries) {
    post(l.audio + '?seq=' + seq, body.buffer, 'application/octet-stream').then(function (r) {
      if (r.ok) {
        l.seq = seq + 1;
        l.sending = false;
        pump();
        return;
      }
      return explain(r).then(function (why) { cut(l, why); });
    }, function () {
      // The same number again: central takes a repeat of the last as a retry.
      if (tries < 4 && !l.over) {
        setTimeout(function () { send(l, seq, body, tries + 1); }, 500);
      } else {
        cut(l, words.network);
      }
    });
  }

  function teardown(l) {
    l.over = true;
    clearInterval(l.timer);
    if (l.stream) l.stream.getTracks().forEach(function (t) { t.stop(); });
    if (l.ctx) l.ctx.close();
    if (live === l) live = null;
    startBtn.disabled = false;
    stopBtn.disabled = true;
  }

  // Central ended it (a bound, a stall, an error): said, and the microphone closed.
  function cut(l, why) {
    if (l.over) return;
    teardown(l);
    show(words.cut + ' · ' + clock(Date.now() - l.started), 'cut');
    fail(why);
  }

  function tick() {
    var l = live;
    if (!l || !l.id || l.stopping) return;
    var text = words.onAir + ' · ' + clock(Date.now() - l.started) + ' · ' + l.stations + ' ' +
      words.stations;
    if (l.dropped > 0) text += ' · ' + decimal(l.dropped) + ' ' + words.dropped;
    show(text, 'on-air');
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (live) return;
    fail('');
    startBtn.disabled = true;
    show(words.asking, 'asking');
    var l = { queue: [], filled: 0, pcm: new Int16Array(CHUNK), seq: 0, dropped: 0, sending: false };
    live = l;
    var audio = { channelCount: 1, echoCancellation: false, noiseSuppression: true, autoGainControl: true };
    navigator.mediaDevices.getUserMedia({ audio: audio }).then(function (stream) {
      l.stream = stream;
      try { l.ctx = new AudioContext({ sampleRate: RATE }); } catch (e) { l.ctx = new AudioContext(); }
      return l.ctx.audioWorklet.addModule(form.getAttribute('data-worklet')).then(function () {
        var source = l.ctx.createMediaStreamSource(stream);
        var node = new AudioWorkletNode(l.ctx, 'loa-capture');
        node.port.onmessage = function (m) { take(m.data); };
        source.connect(node);
        node.connect(l.ctx.destination); // silent: it only keeps the node running
        l.resampler = new Resampler(l.ctx.sampleRate);
        return l.ctx.resume();
      });
    }).then(function () {
      if (l.over) return;
      show(words.starting, 'starting');
      return post('/live/start', new URLSearchParams(new FormData(form)),
        'application/x-www-form-urlencoded').then(function (r) {
        if (!r.ok) return explain(r).then(function (why) { throw new Error(why); });
        return r.json();
      }).then(function (started) {
        l.id = started.id;
        l.audio = started.audio;
        l.stop = started.stop;
        l.stations = started.stations;
        l.started = Date.now();
        form.setAttribute('data-live-id', started.id);
        l.timer = setInterval(tick, 250);
        tick();
        stopBtn.disabled = false;
      });
    }).catch(function (e) {
      var why = e && e.name && e.name !== 'Error' ? words.noMic + ' (' + e.name + ')' : e.message;
      teardown(l);
      show(stateEl.getAttribute('data-idle'), 'idle');
      fail(why);
    });
  });

  stopBtn.addEventListener('click', function () {
    var l = live;
    if (!l || !l.id || l.stopping) return;
    l.stopping = true;
    stopBtn.disabled = true;
    show(words.stopping, 'stopping');
    if (l.filled > 0) l.queue.push(l.pcm.slice(0, l.filled));
    l.filled = 0;
    var waited = 0;
    (function drain() {
      if (l.over) return;
      if ((l.sending || l.queue.length > 0) && waited < 5000) {
        pump();
        waited += 50;
        setTimeout(drain, 50);
        return;
      }
      var ran = Date.now() - l.started;
      post(l.stop, '', null).then(function (r) {
        if (!r.ok) return explain(r).then(function (why) { cut(l, why); });
        return r.json().then(function (end) {
          teardown(l);
          show(words.ended + ' · ' + clock(ran) + ' · ' + decimal(end.audio_secs) + ' ' +
            words.seconds, 'ended');
        });
      }, function () { cut(l, words.network); });
    })();
  });
})();

// kilnwatch control-room page: live minutes over Server-Sent Events, trend in SVG, hourly table.
// Plain browser JavaScript, no build step, no request to any other origin. Words, numbers and
// times come from KilnI18n (i18n.js): the chosen language, in the plant's time zone.
'use strict';

(() => {
  const i18n = KilnI18n;
  const { t } = i18n;
  const API = 'api/v1/';
  const MINUTE_MS = 60_000;
  const HOUR_MS = 3_600_000;
  const TREND_MS = 2 * HOUR_MS;
  const RUNNING_QUIET_MS = 10_000;  // a running minute not updated for this long is shown greyed
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const STATUS_ICON = {
    valid: '●', stale: '▲', maintenance: '◆', fault: '✖', catching_up: '↻', invalid: '▲', no_data: '○',
  };

  const state = {
    kilns: new Map(),       // id -> kiln view state
    alarms: null,           // last body of the `alarms` event
    target: null,           // the plant's KPI row with a target, this year (GET /kpi)
    alarmsAt: 0,            // performance.now() when it arrived
    role: null,             // the signed-in token's role: operators get the alarm buttons
    source: null,           // the EventSource
    connected: false,
    lastMessage: 0,         // Date.now() of the last event, pings included
    pingS: 15,
    staleAfterS: 180,
    reconnectTimer: 0,
    kilnList: null,         // body of /api/v1/kilns
    connection: ['connecting', null],  // state name, catalogue key of a special text
  };

  // ---- small helpers ---------------------------------------------------------------------

  const $ = (root, sel) => root.querySelector(sel);
  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const fmt = (x, digits) => i18n.num(x, digits);
  const { hhmm, hhmmss, duration } = i18n;
  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  const localDayStart = (ms) => i18n.dayStart(ms);

  /** The server wants a token: the page shows its sign-in form. */
  class SignInNeeded extends Error {}

  async function getJSON(path, params) {
    const url = new URL(API + path, document.baseURI);
    for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, value);
    const response = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (response.status === 401) throw new SignInNeeded(url.pathname);
    if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
    return response.json();
  }

  // ---- sign-in: the token goes to the server once; its HttpOnly cookie carries it after that ---

  let signingIn = null;

  function loginError(key) {
    const el = document.getElementById('login-error');
    if (key) el.dataset.i18n = key;
    else delete el.dataset.i18n;
    el.textContent = key ? t(key) : '';
  }

  /** Shows the form until the server accepts a token; resolves then. */
  function signIn() {
    if (signingIn) return signingIn;
    signingIn = new Promise((resolve) => {
      const box = document.getElementById('login');
      const form = document.getElementById('login-form');
      const input = document.getElementById('login-token');
      setConnection('signin');
      box.hidden = false;
      input.focus();
      const submit = async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        let response;
        try {
          response = await fetch(API + 'session', {
            method: 'POST',
            cache: 'no-store',
            headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
            body: JSON.stringify({ token }),
          });
        } catch (err) {
          loginError('login.failed');
          return;
        }
        if (!response.ok) {
          loginError({ 401: 'login.wrong', 403: 'login.role' }[response.status] || 'login.failed');
          input.select();
          return;
        }
        input.value = '';
        loginError(null);
        box.hidden = true;
        form.removeEventListener('submit', submit);
        signingIn = null;
        setConnection('connecting');
        resolve();
      };
      form.addEventListener('submit', submit);
    });
    return signingIn;
  }

  function debounce(fn, ms) {
    let timer = 0;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  // ---- kiln cards ------------------------------------------------------------------------

  function buildCards(kilns) {
    const main = document.getElementById('kilns');
    const template = document.getElementById('kiln-template');
    state.kilnList = kilns;
    renderPlantName();
    for (const info of kilns) {
      const card = template.content.firstElementChild.cloneNode(true);
      card.id = `kiln-${info.id}`;
      card.dataset.kiln = info.id;
      card.setAttribute('aria-label', info.name);
      $(card, '.kiln-name').textContent = info.name;
      main.appendChild(card);
      const k = {
        id: info.id,
        name: info.name,
        live: null,
        receivedAt: 0,
        newest: null,            // start of the newest minute [ms]
        minutes: new Map(),      // minute start [ms] -> {v, valid}
        hours: [],
        running: null,           // newest running_minute row (provisional)
        runningAt: 0,            // performance.now() when it arrived
        el: {
          card,
          intensity: $(card, '.intensity'),
          co2: $(card, '.co2'),
          clinker: $(card, '.clinker'),
          vtime: $(card, '.vtime'),
          age: $(card, '.age'),
          statusIcon: $(card, '.status-icon'),
          statusText: $(card, '.status-text'),
          statusDetail: $(card, '.status-detail'),
          svg: $(card, '.chart'),
          tbody: $(card, 'tbody'),
          day: $(card, '.day'),
          running: $(card, '.running'),
          rIntensity: $(card, '.r-intensity'),
          rCo2: $(card, '.r-co2'),
          rClinker: $(card, '.r-clinker'),
          rtime: $(card, '.rtime'),
        },
        drawPending: false,
      };
      k.loadMinutes = debounce(() => loadMinutes(k), 400);
      k.loadHours = debounce(() => loadHours(k), 800);
      state.kilns.set(info.id, k);
      renderCardWords(k);
    }
  }

  // ---- the plant's reduction target: this year's KPI against its trajectory (GET /kpi) -------

  async function loadTarget() {
    try {
      const body = await getJSON('kpi', { level: 'plant', period: 'year' });
      state.target = (body.rows || []).find((r) => r.target_kpi) || null;
    } catch (err) {
      state.target = null;  // no report access or no store: the header shows no target
    }
    renderTarget();
  }

  function renderTarget() {
    const el = document.getElementById('target');
    const r = state.target;
    el.hidden = !r;
    if (!r) return;
    const status = r.target_on_track === null ? 'target.unknown' : (r.target_on_track ? 'target.on' : 'target.off');
    el.dataset.onTrack = String(r.target_on_track);
    setText(el, t('target.line', {
      year: r.period,
      target: fmt(r.target_value, 0),
      actual: fmt(r[r.target_kpi], 0),
      unit: t(r.target_kpi.includes('_mj_') ? 'unit.energy' : 'unit.intensity'),
      status: t(status),
      needed: fmt(r.reduction_needed_kg_per_t_per_year, 0),
      final: String(r.target_final_year),
    }));
  }

  function renderPlantName() {
    if (!state.kilnList) return;
    const plants = [...new Set(state.kilnList.map((k) => k.plant))];
    setText(document.getElementById('plant-name'), t('page.plant', { plants: plants.join(', '), count: state.kilnList.length }));
  }

  /** Everything of a card that depends on the language, drawn again after a switch. */
  function renderCardWords(k) {
    $(k.el.card, '.table-wrap').setAttribute('aria-label', t('today.region', { kiln: k.name }));
    if (k.live) renderLive(k);
    else { renderAge(k); renderStatus(k); renderRunning(k); }
    draw(k);
    renderTable(k);
  }

  function ageOf(k) {
    if (!k.live || !isNum(k.live.age_s)) return null;
    return k.live.age_s + (performance.now() - k.receivedAt) / 1000;
  }

  function onMinute(p) {
    const k = state.kilns.get(p.kiln);
    if (!k) return;
    k.live = p;
    k.receivedAt = performance.now();
    if (p.time) {
      const t = Date.parse(p.time);
      const prev = k.newest;
      k.minutes.set(t, { v: p.intensity_kg_per_t, valid: p.valid });
      if (prev === null || t > prev) k.newest = t;
      if (prev === null || t - prev > MINUTE_MS) k.loadMinutes();  // first minute, or minutes skipped
      if (prev === null || Math.floor(t / HOUR_MS) !== Math.floor(prev / HOUR_MS)) k.loadHours();
      prune(k);
    }
    renderLive(k);
    scheduleDraw(k);
    renderTotal();
  }

  function prune(k) {
    const oldest = k.newest - TREND_MS - HOUR_MS;
    for (const t of k.minutes.keys()) if (t < oldest) k.minutes.delete(t);
  }

  function renderLive(k) {
    const p = k.live;
    const e = k.el;
    setText(e.intensity, fmt(p.intensity_kg_per_t, 0));
    e.intensity.dataset.value = isNum(p.intensity_kg_per_t) ? String(p.intensity_kg_per_t) : '';
    setText(e.co2, fmt(p.co2_t_per_h, 1));
    e.co2.dataset.value = isNum(p.co2_t_per_h) ? String(p.co2_t_per_h) : '';
    setText(e.clinker, fmt(p.clinker_t_per_h, 1));
    e.clinker.dataset.value = isNum(p.clinker_t_per_h) ? String(p.clinker_t_per_h) : '';
    e.card.dataset.time = p.time || '';
    e.card.dataset.valid = String(Boolean(p.valid));
    setText(e.vtime, p.time ? hhmm(Date.parse(p.time)) : '--:--');
    e.vtime.dateTime = p.time || '';
    e.vtime.title = p.time ? t('card.minute_start', { time: i18n.full(Date.parse(p.time)) }) : '';
    renderAge(k);
    renderStatus(k);
    renderRunning(k);
  }

  function onRunning(row) {
    const k = state.kilns.get(row.kiln);
    if (!k) return;
    k.running = row;
    k.runningAt = performance.now();
    renderRunning(k);
  }

  /** The running minute beside the closed one: provisional, until the closed minute replaces it. */
  function renderRunning(k) {
    const r = k.running;
    const e = k.el;
    const closed = k.live && k.live.time ? Date.parse(k.live.time) : null;
    const shown = r !== null && (closed === null || Date.parse(r.minute) > closed);
    const quiet = shown && performance.now() - k.runningAt > RUNNING_QUIET_MS;
    e.card.dataset.running = shown ? (quiet ? 'quiet' : 'live') : 'none';
    e.card.dataset.runningThrough = shown ? r.through : '';
    e.rIntensity.dataset.value = shown && isNum(r.intensity_kg_per_t) ? String(r.intensity_kg_per_t) : '';
    setText(e.rIntensity, shown ? fmt(r.intensity_kg_per_t, 0) : '—');
    setText(e.rCo2, shown ? fmt(r.co2_t_per_h, 1) : '—');
    setText(e.rClinker, shown ? fmt(r.clinker_t_per_h, 1) : '—');
    const through = shown ? Date.parse(r.through) : null;
    setText(e.rtime, shown ? hhmmss(through) : '--:--:--');
    e.rtime.dateTime = shown ? r.through : '';
    e.running.title = shown
      ? t('card.running_title', { start: hhmm(Date.parse(r.minute)), through: hhmmss(through), points: r.points })
      : '';
  }

  function renderAge(k) {
    const age = ageOf(k);
    setText(k.el.age, age === null ? '—' : t('card.age', { duration: duration(age) }));
  }

  function statusOf(k) {
    const s = state.alarms && state.alarms.kilns ? state.alarms.kilns[k.id] : null;
    const since = (performance.now() - state.alarmsAt) / 1000;
    const age = ageOf(k);
    let status = s ? s.status : 'no_data';
    let detail = '';
    if (status === 'no_data' && k.live && k.live.time) {
      // A minute came before the alarms caught up with it: judge it here until they do.
      const catchUpS = state.alarms ? state.alarms.catch_up_lag_s : 300;
      status = age !== null && age > catchUpS ? 'catching_up' : (k.live.valid ? 'valid' : 'invalid');
      detail = status === 'catching_up' ? t('detail.catching_up', { lag: duration(age) }) : '';
    } else if (s) {
      if (status === 'catching_up') detail = t('detail.catching_up', { lag: duration(s.lag_s + since) });
      else if (status === 'valid') detail = t('detail.live');
      else if (status === 'stale' && s.detail === 'no data') detail = t('detail.stale_no_minute', { duration: duration(isNum(s.minute_age_s) ? s.minute_age_s + since : null) });
      else if (status === 'stale') detail = t('detail.stale_no_valid', { duration: duration(isNum(s.valid_age_s) ? s.valid_age_s + since : null) });
      else if (status === 'maintenance') detail = t(s.detail === 'calibration' ? 'detail.calibration' : 'detail.maintenance');
      else if (status === 'fault') detail = t('detail.fault');
      else if (status === 'invalid') detail = t('detail.invalid');
      else detail = t('detail.waiting');
    }
    if (!state.connected && age !== null && age > state.staleAfterS) {
      status = 'stale';
      detail = t('detail.no_connection');
    }
    return { status, detail };
  }

  function renderStatus(k) {
    const { status, detail } = statusOf(k);
    const e = k.el;
    e.card.dataset.status = status;
    setText(e.statusIcon, STATUS_ICON[status] || '?');
    setText(e.statusText, t(`status.${status}`));
    setText(e.statusDetail, detail || '\u00a0');
  }

  function renderTotal() {
    let co2 = 0;
    let clinker = 0;
    let count = 0;
    const missing = [];
    for (const k of state.kilns.values()) {
      const p = k.live;
      const { status } = statusOf(k);
      if (p && p.valid && isNum(p.co2_t_per_h) && isNum(p.clinker_t_per_h) && status !== 'stale') {
        co2 += p.co2_t_per_h;
        clinker += p.clinker_t_per_h;
        count += 1;
      } else {
        missing.push(k.name);
      }
    }
    const has = count > 0;
    setText(document.getElementById('total-co2'), has ? fmt(co2, 1) : '—');
    setText(document.getElementById('total-clinker'), has ? fmt(clinker, 1) : '—');
    setText(document.getElementById('total-intensity'), has && clinker > 0 ? fmt(co2 * 1000 / clinker, 0) : '—');
    const note = missing.length === 0
      ? t('total.all', { count })
      : t('total.partial', { kilns: i18n.list(missing) });
    setText(document.getElementById('total-note'), note);
  }

  // ---- history: minutes for the trend, hours for the table ---------------------------------

  async function loadMinutes(k) {
    if (k.newest === null) return;
    const end = k.newest + MINUTE_MS;
    try {
      const rows = await getJSON(`kilns/${encodeURIComponent(k.id)}/minutes`, {
        start: new Date(end - TREND_MS).toISOString(),
        end: new Date(end).toISOString(),
      });
      for (const r of rows) k.minutes.set(Date.parse(r.minute), { v: r.intensity_kg_per_t, valid: r.valid });
      scheduleDraw(k);
    } catch (err) {
      // kilnwatch unreachable: the stream shows it, and reloads the history once it reconnects.
    }
  }

  async function loadHours(k) {
    if (k.newest === null) return;
    const dayStart = localDayStart(k.newest);
    const start = Math.min(dayStart, Math.floor((k.newest - TREND_MS) / HOUR_MS) * HOUR_MS);
    try {
      const rows = await getJSON(`kilns/${encodeURIComponent(k.id)}/hourly`, {
        start: new Date(start).toISOString(),
        end: new Date(k.newest + HOUR_MS).toISOString(),
      });
      k.hours = rows.map((r) => ({
        t: Date.parse(r.hour), co2: r.co2_t, clinker: r.clinker_t, intensity: r.intensity_kg_per_t,
        valid: r.valid, completeness: r.completeness,
      }));
      renderTable(k);
      scheduleDraw(k);
    } catch (err) {
      // as above: reloaded when the stream reconnects
    }
    loadAnnotations(k, start);
  }

  async function loadAnnotations(k, start) {
    try {
      const rows = await getJSON(`kilns/${encodeURIComponent(k.id)}/annotations`, {
        start: new Date(start).toISOString(),
        end: new Date(k.newest + HOUR_MS).toISOString(),
      });
      k.annotations = rows.filter((a) => !a.cancelled).map((a) => ({
        start: Date.parse(a.start), end: a.end === null ? null : Date.parse(a.end), kind: a.kind, title: a.title,
      }));
      scheduleDraw(k);
    } catch (err) {
      // as above
    }
  }

  function cell(text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderTable(k) {
    const tbody = k.el.tbody;
    if (k.newest === null) {
      const tr = document.createElement('tr');
      const td = cell(t('today.waiting'), 'muted');
      td.colSpan = 6;
      tr.appendChild(td);
      tbody.replaceChildren(tr);
      return;
    }
    const dayStart = localDayStart(k.newest);
    setText(k.el.day, i18n.day(dayStart));
    const rows = k.hours.filter((h) => h.t >= dayStart).sort((a, b) => b.t - a.t);
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = cell(t('today.no_hour'), 'muted');
      td.colSpan = 6;
      tr.appendChild(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(...rows.map((h) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = `${hhmm(h.t)}–${hhmm(h.t + HOUR_MS)}`;
      tr.append(
        th,
        cell(fmt(h.co2, 1)),
        cell(fmt(h.clinker, 1)),
        cell(fmt(h.intensity, 0)),
        cell(t(h.valid ? 'today.valid' : 'today.invalid'), h.valid ? 'ok' : 'bad'),
        cell(fmt(h.completeness * 100, 0), h.completeness < 0.8 ? 'low' : ''),
      );
      return tr;
    }));
  }

  // ---- trend -----------------------------------------------------------------------------

  function scheduleDraw(k) {
    if (k.drawPending) return;
    k.drawPending = true;
    requestAnimationFrame(() => { k.drawPending = false; draw(k); });
  }

  function svgEl(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceRange(lo, hi) {
    let span = hi - lo;
    if (span < 20) { const mid = (hi + lo) / 2; lo = mid - 10; hi = mid + 10; span = 20; }
    lo -= span * 0.08;
    hi += span * 0.08;
    const raw = (hi - lo) / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step, step];
  }

  function draw(k) {
    const svg = k.el.svg;
    const W = Math.max(svg.clientWidth, 300);
    const H = Math.max(svg.clientHeight, 150);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const nodes = [];
    if (k.newest === null) {
      nodes.push(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, t('trend.waiting')));
      svg.replaceChildren(...nodes);
      svg.setAttribute('aria-label', t('trend.label_empty', { kiln: k.name }));
      return;
    }
    const t1 = k.newest + MINUTE_MS;
    const t0 = t1 - TREND_MS;
    const points = [...k.minutes.entries()].filter(([t]) => t >= t0 && t < t1).sort((a, b) => a[0] - b[0]);
    const hours = k.hours.filter((h) => h.t + HOUR_MS > t0 && h.t < t1 && isNum(h.intensity));
    const values = points.filter(([, m]) => m.valid && isNum(m.v)).map(([, m]) => m.v)
      .concat(hours.map((h) => h.intensity));
    const [lo, hi, step] = values.length ? niceRange(Math.min(...values), Math.max(...values)) : [0, 1000, 250];
    const L = 58; const R = 10; const T = 8; const B = 24;
    const pw = W - L - R;
    const ph = H - T - B;
    const x = (t) => L + ((t - t0) / TREND_MS) * pw;
    const y = (v) => T + ((hi - v) / (hi - lo)) * ph;

    for (let v = lo; v <= hi + step / 2; v += step) {
      nodes.push(svgEl('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      nodes.push(svgEl('text', { x: L - 6, y: y(v) + 5, 'text-anchor': 'end', class: 'axis-label' }, fmt(v, 0)));
    }
    const tickMs = 30 * MINUTE_MS;
    const shift = i18n.offsetMs(t0);  // ticks on the half hours of the plant's clock
    for (let t = Math.ceil((t0 + shift) / tickMs) * tickMs - shift; t <= t1; t += tickMs) {
      nodes.push(svgEl('line', { x1: x(t), x2: x(t), y1: T, y2: T + ph, class: 'grid' }));
      nodes.push(svgEl('text', { x: x(t), y: H - 5, 'text-anchor': 'middle', class: 'axis-label' }, hhmm(t)));
    }
    for (const a of k.annotations || []) {  // operators' annotations: a band over the time they cover
      const a0 = Math.max(a.start, t0);
      const a1 = Math.min(a.end === null ? t1 : a.end, t1);
      if (a1 <= a0) continue;
      const band = svgEl('rect', { x: x(a0), y: T, width: Math.max(x(a1) - x(a0), 2), height: ph, class: `annotation ${a.kind}` });
      band.appendChild(svgEl('title', {}, `${a.kind}: ${a.title}`));
      nodes.push(band);
    }
    for (const h of hours) {
      const cls = h.valid ? 'hour' : 'hour invalid';
      const yy = y(h.intensity);
      nodes.push(svgEl('line', { x1: x(Math.max(h.t, t0)), x2: x(Math.min(h.t + HOUR_MS, t1)), y1: yy, y2: yy, class: cls }));
    }
    let d = '';
    let prevT = null;
    const markW = Math.max(1.5, pw / 120 - 0.5);
    const isValid = (m) => m && m.valid && isNum(m.v);
    for (const [t, m] of points) {
      if (isValid(m)) {
        const joined = prevT !== null && t - prevT === MINUTE_MS;
        const xx = x(t + MINUTE_MS / 2);
        d += `${joined ? 'L' : 'M'}${xx.toFixed(1)},${y(m.v).toFixed(1)}`;
        if (!joined && !isValid(k.minutes.get(t + MINUTE_MS))) {
          nodes.push(svgEl('circle', { cx: xx, cy: y(m.v), r: 3, class: 'dot' }));  // a lone valid minute
        }
        prevT = t;
      } else {
        nodes.push(svgEl('rect', { x: x(t), y: T + ph - 8, width: markW, height: 8, class: 'invalid-mark' }));
        prevT = null;
      }
    }
    if (d) nodes.push(svgEl('path', { d, class: 'minute' }));
    svg.replaceChildren(...nodes);
    const range = values.length ? t('trend.range', { lo: fmt(Math.min(...values), 0), hi: fmt(Math.max(...values), 0) }) : t('trend.no_valid');
    svg.setAttribute('aria-label', t('trend.label', { kiln: k.name, start: hhmm(t0), end: hhmm(t1), range }));
  }

  // ---- alarms ----------------------------------------------------------------------------

  function kilnName(id) {
    const k = id ? state.kilns.get(id) : null;
    return k ? k.name : (id || t('kind.plant'));
  }

  /** Operators and admins acknowledge and shelve; a viewer sees no buttons. */
  const canOperate = () => state.role === 'operator' || state.role === 'admin';

  function renderAlarms() {
    const body = state.alarms;
    if (!body) return;
    const list = document.getElementById('alarm-list');
    const section = list.closest('.alarms');
    const active = [...body.active].sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'alarm' ? -1 : 1));
    const cleared = body.cleared.slice(0, 10);
    const items = active.map((a) => alarmItem(a))
      .concat((body.shelved || []).map((a) => alarmItem(a)), (body.suppressed || []).map((a) => alarmItem(a)))
      .concat(cleared.map((a) => alarmItem(a)));
    if (active.length === 0) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = t('alarms.none');
      items.unshift(li);
    }
    list.replaceChildren(...items);
    setText(document.getElementById('alarm-count'), String(active.length));
    section.dataset.active = String(active.length > 0);
    for (const k of state.kilns.values()) renderStatus(k);
    renderTotal();
  }

  function alarmItem(a) {
    const li = document.createElement('li');
    li.dataset.kind = a.kind;
    li.dataset.id = a.id;
    li.dataset.active = String(a.active);
    if (a.kiln) li.dataset.kiln = a.kiln;
    const kindClass = a.kind === 'maintenance' || a.kind === 'calibration' ? ' maintenance-kind' : '';
    li.className = a.active ? `${a.severity}${kindClass}` : 'cleared';
    const sev = document.createElement('span');
    sev.className = 'sev';
    sev.textContent = t(a.active ? `severity.${a.severity}` : 'severity.cleared');
    const who = document.createElement('span');
    who.textContent = `${kilnName(a.kiln)} · ${t(`kind.${a.kind}`)}`;
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = alarmMessage(a);
    const when = document.createElement('span');
    when.className = 'when num';
    when.dataset.start = a.start;
    if (a.end) when.dataset.end = a.end;
    const st = a.state || 'normal';
    li.dataset.state = st;
    if (st === 'active_unacknowledged' || st === 'cleared_unacknowledged') li.classList.add('unacked');
    if (st === 'shelved' || st === 'suppressed') {
      li.className = st;
      sev.textContent = t(`state.${st}`);
      if (st === 'shelved') {
        msg.textContent = `${alarmMessage(a)} — ${t('alarms.shelved_until', { time: hhmmss(Date.parse(a.shelved_until)), reason: a.shelve_reason || '' })}`;
      }
    } else if (st === 'cleared_unacknowledged') {
      sev.textContent = t('state.cleared_unacknowledged');
    }
    const actions = document.createElement('span');
    actions.className = 'actions';
    if (canOperate()) {
      if (st === 'active_unacknowledged' || st === 'cleared_unacknowledged') {
        actions.append(actionButton('ack', 'alarms.ack', () => alarmAction(a.id, 'acknowledge', {})));
      }
      if (st === 'active_unacknowledged' || st === 'active_acknowledged') {
        actions.append(actionButton('shelve', 'alarms.shelve', () => openShelve(a)));
      }
      if (st === 'shelved') {
        actions.append(actionButton('unshelve', 'alarms.unshelve', () => alarmAction(a.id, 'unshelve', {})));
      }
    }
    li.append(sev, who, msg, when, actions);
    updateWhen(when);
    return li;
  }

  function actionButton(name, key, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `alarm-action ${name}`;
    b.dataset.action = name;
    b.textContent = t(key);
    b.addEventListener('click', onClick);
    return b;
  }

  async function alarmAction(id, action, body) {
    const error = document.getElementById('alarm-action-error');
    error.textContent = '';
    try {
      const response = await fetch(`${API}alarms/${encodeURIComponent(id)}/${action}`, {
        method: 'POST',
        cache: 'no-store',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {
        await signIn();
        return;
      }
      if (!response.ok) {
        const detail = await response.json().then((j) => j.detail, () => `HTTP ${response.status}`);
        error.textContent = t('alarms.action_failed', { detail: typeof detail === 'string' ? detail : `HTTP ${response.status}` });
        return;
      }
      state.alarms = await getJSON('alarms');
      state.alarmsAt = performance.now();
      renderAlarms();
    } catch (err) {
      error.textContent = t('alarms.action_failed', { detail: String(err.message || err) });
    }
  }

  function openShelve(a) {
    const dialog = document.getElementById('shelve-dialog');
    const form = document.getElementById('shelve-form');
    const reason = document.getElementById('shelve-reason');
    setText(document.getElementById('shelve-alarm'), alarmMessage(a));
    reason.value = '';
    form.onsubmit = (event) => {
      const ok = event.submitter && event.submitter.value === 'ok';
      if (!ok) return;  // method=dialog closes it
      if (!reason.value.trim()) {
        event.preventDefault();
        reason.focus();
        return;
      }
      const duration = Number(document.getElementById('shelve-duration').value);
      alarmAction(a.id, 'shelve', { duration_s: duration, reason: reason.value.trim() });
    };
    dialog.showModal();
    reason.focus();
  }

  /** The alarm in the page's language from its code and parameters; the server's English otherwise. */
  function alarmMessage(a) {
    const key = `alarm.${a.code}`;
    return a.code && t(key) !== key ? t(key, a.params || {}) : a.message;
  }

  function updateWhen(el) {
    const start = Date.parse(el.dataset.start);
    if (el.dataset.end) {
      const end = Date.parse(el.dataset.end);
      setText(el, `${hhmmss(start)}–${hhmmss(end)}`);
    } else {
      setText(el, t('alarms.since', { time: hhmmss(start), duration: duration((Date.now() - start) / 1000) }));
    }
  }

  // ---- the stream ------------------------------------------------------------------------

  function setConnection(stateName, textKey) {
    state.connection = [stateName, textKey || null];
    const el = document.getElementById('connection');
    el.dataset.state = stateName;
    setText($(el, '.conn-text'), t(textKey || `conn.${stateName}`));
    state.connected = stateName === 'live';
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    if (state.source) state.source.close();
    const source = new EventSource(API + 'stream');
    state.source = source;
    const seen = () => { state.lastMessage = Date.now(); };
    source.addEventListener('open', () => {
      seen();
      setConnection('live');
      for (const k of state.kilns.values()) { k.loadMinutes(); k.loadHours(); }
    });
    source.addEventListener('hello', (e) => {
      seen();
      const hello = JSON.parse(e.data);
      state.pingS = hello.ping_s;
      state.staleAfterS = hello.stale_after_s;
    });
    source.addEventListener('ping', seen);
    source.addEventListener('minute', (e) => { seen(); onMinute(JSON.parse(e.data)); });
    source.addEventListener('running_minute', (e) => { seen(); onRunning(JSON.parse(e.data)); });
    source.addEventListener('revised', (e) => {
      seen();
      const k = state.kilns.get(JSON.parse(e.data).kiln);
      if (k) k.loadMinutes();
    });
    source.addEventListener('hour', (e) => {
      seen();
      const k = state.kilns.get(JSON.parse(e.data).kiln);
      if (k) k.loadHours();
    });
    source.addEventListener('alarms', (e) => {
      seen();
      state.alarms = JSON.parse(e.data);
      state.alarmsAt = performance.now();
      state.staleAfterS = state.alarms.stale_after_s;
      renderAlarms();
    });
    source.addEventListener('error', () => {
      if (state.source !== source) return;
      setConnection('reconnecting');
      // The browser retries by itself unless the server answered with an error; then we do.
      if (source.readyState === EventSource.CLOSED) state.reconnectTimer = setTimeout(reconnect, 3000);
    });
  }

  /** After the server refused the stream: sign in again if that was why, then connect. */
  async function reconnect() {
    try {
      const session = await getJSON('session');
      if (session.auth && !session.signed_in) {
        if (state.source) state.source.close();
        state.source = null;
        await signIn();
      }
    } catch (err) {
      // unreachable: connect() below fails and comes back here
    }
    connect();
  }

  function everySecond() {
    const now = Date.now();
    setText(document.getElementById('clock'), hhmmss(now));
    showTimezone();  // the offset moves with daylight saving time
    for (const k of state.kilns.values()) { renderAge(k); renderStatus(k); renderRunning(k); }
    renderTotal();
    for (const el of document.querySelectorAll('#alarm-list .when')) updateWhen(el);
    // A half-open connection shows no error: without pings for a while, start again.
    if (state.source && state.connected && now - state.lastMessage > Math.max(3 * state.pingS, 10) * 1000) {
      setConnection('reconnecting');
      connect();
    }
  }

  function showTimezone() {
    setText(document.getElementById('tz'), i18n.zoneLabel(Date.now()));
  }

  /** After a switch of language: every text and number again, without a reload. */
  function relabel() {
    showTimezone();
    renderPlantName();
    renderTarget();
    setConnection(...state.connection);
    for (const k of state.kilns.values()) renderCardWords(k);
    renderAlarms();
    renderTotal();
    everySecond();
  }

  // ---- operator entries: annotations and lab values (operator and admin tokens only) ---------

  /** A datetime-local value read as the plant's wall-clock time, in ms since 1970 UTC. */
  function plantTime(value) {
    const guess = Date.parse(`${value}:00Z`);
    return guess - i18n.offsetMs(guess - i18n.offsetMs(guess));
  }

  async function postJSON(path, body) {
    const response = await fetch(API + path, {
      method: 'POST',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.ok) return null;
    const detail = await response.json().catch(() => ({}));
    const reason = Array.isArray(detail.detail) ? detail.detail.map((d) => d.msg).join('; ') : detail.detail;
    return reason || `HTTP ${response.status}`;
  }

  async function setupOperator(kilns) {
    let session;
    try {
      session = await getJSON('session');  // after the sign-in: whose token it is
    } catch (err) {
      return;
    }
    if (session.auth && !['operator', 'admin'].includes(session.role)) return;  // viewers see no forms
    const box = document.getElementById('operator');
    const result = document.getElementById('operator-result');
    for (const select of box.querySelectorAll('.op-kiln')) {
      select.replaceChildren(...kilns.map((k) => new Option(k.name, k.id)));
    }
    const submitted = (form, path, body, onSaved) => form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      let refused;
      try {
        refused = await postJSON(`kilns/${encodeURIComponent(f.get('kiln'))}/${path}`, body(f));
      } catch (err) {
        refused = String(err);
      }
      result.textContent = refused ? t('op.refused', { reason: refused }) : t('op.saved');
      if (!refused) { form.reset(); onSaved(f.get('kiln')); }
    });
    const iso = (v) => new Date(plantTime(v)).toISOString();
    submitted(document.getElementById('annotation-form'), 'annotations', (f) => ({
      kind: f.get('kind'), title: f.get('title'), start: iso(f.get('start')),
      end: f.get('end') ? iso(f.get('end')) : null,
    }), (kiln) => { const k = state.kilns.get(kiln); if (k) loadHours(k); });
    submitted(document.getElementById('manual-form'), 'manual', (f) => ({
      quantity: f.get('quantity'), value: Number(f.get('value')), valid_from: iso(f.get('valid_from')),
    }), () => {});
    box.hidden = false;
  }

  async function init() {
    await i18n.start();
    i18n.onChange(relabel);
    everySecond();
    setInterval(everySecond, 1000);
    let delay = 1000;
    for (;;) {
      try {
        let session = await getJSON('session');
        if (session.auth && !session.signed_in) {
          await signIn();
          session = await getJSON('session');
        }
        state.role = session.role;
        const [page, kilns] = await Promise.all([getJSON('page'), getJSON('kilns')]);
        i18n.setTimeZone(page.timezone);
        showTimezone();
        buildCards(kilns);
        setupOperator(kilns);
        loadTarget();
        setInterval(loadTarget, 15 * 60 * 1000);
        break;
      } catch (err) {
        if (err instanceof SignInNeeded) {
          await signIn();
          continue;
        }
        setConnection('reconnecting', 'conn.unreachable');
        await sleep(delay);
        delay = Math.min(delay * 2, 15000);
      }
    }
    connect();
    window.addEventListener('resize', debounce(() => { for (const k of state.kilns.values()) draw(k); }, 200));
  }

  init();
})();

// kilnwatch control-room page: languages (one JSON catalogue per language in i18n/), numbers and
// times with the language's conventions (Intl), in the plant's time zone. Plain browser JavaScript.
'use strict';

const KilnI18n = (() => {
  const LANGUAGES = ['en', 'az', 'ru'];
  const STORE_KEY = 'kilnwatch.lang';
  const catalogues = new Map();   // language -> promise of its catalogue
  const listeners = [];
  let lang = 'en';
  let locale = 'en';
  let catalogue = {};
  let timeZone = 'UTC';
  let formats = new Map();        // cached Intl formatters, reset on a change of language or zone

  const primary = (tag) => String(tag || '').toLowerCase().split('-')[0];

  /** The saved choice, else the first of the browser's languages we have, else English. */
  function preferred() {
    try {
      const saved = localStorage.getItem(STORE_KEY);
      if (LANGUAGES.includes(saved)) return saved;
    } catch (err) {
      // storage disabled: follow the browser
    }
    const tags = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    return tags.map(primary).find((code) => LANGUAGES.includes(code)) || 'en';
  }

  /** The browser's own tag for that language (en-GB, ru-RU ...) when it has one: its conventions. */
  function localeFor(code) {
    const tags = navigator.languages || [navigator.language];
    return tags.find((tag) => primary(tag) === code) || code;
  }

  function load(code) {
    if (!catalogues.has(code)) {
      const url = new URL(`i18n/${code}.json`, document.baseURI);
      const request = fetch(url, { headers: { Accept: 'application/json' } }).then((response) => {
        if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
        return response.json();
      });
      request.catch(() => catalogues.delete(code));  // a failed load is tried again next time
      catalogues.set(code, request);
    }
    return catalogues.get(code);
  }

  function format(key, options) {
    if (!formats.has(key)) formats.set(key, options());
    return formats.get(key);
  }

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

  /** Intl's number with the catalogue's decimal and group signs: a browser may lack a language's
   *  locale data (Chromium has none for az and falls back to 1,234.5), the catalogue never does. */
  function signs(formatter, x) {
    const decimal = catalogue['number.decimal'];
    const group = catalogue['number.group'];
    return formatter.formatToParts(x).map((p) => {
      if (p.type === 'decimal' && decimal) return decimal;
      if (p.type === 'group' && group) return group;
      return p.value;
    }).join('');
  }

  function num(x, digits) {
    if (!isNum(x)) return '—';
    return signs(format(`n${digits}`, () => new Intl.NumberFormat(locale, {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    })), x);
  }

  function flexNum(x) {
    return signs(format('nflex', () => new Intl.NumberFormat(locale, { maximumFractionDigits: 2 })), x);
  }

  function percent(x) {
    return isNum(x) ? signs(format('pct', () => new Intl.NumberFormat(locale, { style: 'percent' })), x) : '—';
  }

  function t(key, params) {
    const text = Object.hasOwn(catalogue, key) ? catalogue[key] : key;
    if (!params) return text;
    return text.replace(/\{(\w+)(?::(\w+))?\}/g, (whole, name, kind) => {
      const value = params[name];
      if (value === undefined || value === null) return '—';
      if (kind === 'duration') return duration(value);
      if (kind === 'percent') return percent(value);
      return isNum(value) ? flexNum(value) : String(value);
    });
  }

  function duration(s) {
    if (!isNum(s)) return '—';
    s = Math.max(0, s);
    if (s < 90) return t('dur.s', { n: Math.round(s) });
    if (s < 2 * 3600) return t('dur.min', { n: Math.round(s / 60) });
    const pad = (n) => String(n).padStart(2, '0');
    if (s < 2 * 86400) return t('dur.h_min', { h: Math.floor(s / 3600), m: pad(Math.floor((s % 3600) / 60)) });
    return t('dur.d_h', { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }

  function dateTime(key, options) {
    return format(key, () => new Intl.DateTimeFormat(locale, { timeZone, ...options }));
  }

  const hhmm = (ms) => dateTime('hm', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);
  const hhmmss = (ms) => dateTime('hms', {
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).format(ms);
  /** The date in the plant's zone, numeric, in the catalogue's order (month names need locale data). */
  function day(ms) {
    const parts = {};
    const fields = dateTime('day', { day: '2-digit', month: '2-digit', year: 'numeric' }).formatToParts(ms);
    for (const p of fields) parts[p.type] = p.value;
    return t('date.day', { year: parts.year, month: parts.month, day: parts.day });
  }

  const full = (ms) => `${day(ms)} ${hhmmss(ms)} (${timeZone})`;

  /** The zone's offset from UTC at `ms` [ms]. */
  function offsetMs(ms) {
    const parts = {};
    const fields = format('parts', () => new Intl.DateTimeFormat('en', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric',
    })).formatToParts(ms);
    for (const p of fields) parts[p.type] = Number(p.value);
    const asUtc = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
    return asUtc - Math.floor(ms / 1000) * 1000;
  }

  /** Midnight in the plant's zone of the day `ms` falls in [ms since 1970]. */
  function dayStart(ms) {
    const local = new Date(ms + offsetMs(ms));
    const midnight = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate());
    return midnight - offsetMs(midnight - offsetMs(ms));
  }

  /** "Asia/Baku (UTC+04:00)" in the words of the catalogue. */
  function zoneLabel(ms) {
    const off = Math.round(offsetMs(ms) / 60000);
    const pad = (n) => String(n).padStart(2, '0');
    const offset = `${off < 0 ? '−' : '+'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
    return t('clock.zone', { zone: timeZone, offset });
  }

  const list = (items) => items.join(', ');

  /** Texts of elements marked data-i18n="key", and attributes marked data-i18n-aria-label / -title. */
  function translate(root) {
    for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
      el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
    }
  }

  function applyToDocument() {
    document.documentElement.lang = lang;
    document.title = t('page.title');
    translate(document);
    for (const template of document.querySelectorAll('template')) translate(template.content);
    for (const button of document.querySelectorAll('.lang-switch [data-lang]')) {
      button.setAttribute('aria-pressed', String(button.dataset.lang === lang));
    }
  }

  /** Switches to `code`: loads its catalogue, translates the page and tells every listener. */
  async function use(code, remember) {
    const next = await load(code);
    catalogue = next;
    lang = code;
    locale = localeFor(code);
    formats = new Map();
    if (remember) {
      try { localStorage.setItem(STORE_KEY, code); } catch (err) { /* storage disabled */ }
    }
    applyToDocument();
    for (const fn of listeners) fn();
  }

  function setTimeZone(zone) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone });
      timeZone = zone;
    } catch (err) {
      timeZone = 'UTC';   // a zone this browser does not know: say so by showing UTC
    }
    formats = new Map();
  }

  async function start() {
    for (const button of document.querySelectorAll('.lang-switch [data-lang]')) {
      button.addEventListener('click', () => { use(button.dataset.lang, true).catch(() => {}); });
    }
    try {
      await use(preferred(), false);
    } catch (err) {
      await use('en', false).catch(() => {});  // else the page's own English words stay
    }
  }

  return {
    LANGUAGES,
    start,
    use,
    onChange: (fn) => listeners.push(fn),
    get lang() { return lang; },
    get timeZone() { return timeZone; },
    setTimeZone,
    t,
    num,
    percent,
    duration,
    hhmm,
    hhmmss,
    day,
    full,
    dayStart,
    offsetMs,
    zoneLabel,
    list,
  };
})();

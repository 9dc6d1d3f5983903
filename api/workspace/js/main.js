// The planner's workspace: sign in, pick a region and a scenario, edit it on the map, ask for
// recommendations, review it against a plan's targets, compare and download. Every figure shown is
// the service's; the page only formats it (and subtracts the figures before and after an edit).
/* global L */

import { api, useKey } from './api.js';
import { language, loadLanguages, people, setLanguage, t } from './i18n.js';
import { GAP_CLASSES, PlanMap, SITE_STYLES } from './map.js';
import * as edits from './planning.js';
import { place, session, setPlace } from './session.js';
import {
  circlesPopup, clearError, compareView, coverageTable, el, gapPopup, lastEditView, legendView, reviewView, showError, siteLine,
} from './views.js';

const $ = (id) => document.getElementById(id);
const GAP_LIMIT = 10000;
const POLL_MS = 600;

const state = {
  authOn: true, role: null, region: null, detail: null, scenarios: [], scenario: null, coverage: null, change: null,
  mode: 'inspect', job: null, proposals: [], review: null, compared: null, presets: [],
};
const timings = { load: null, edits: [] };
let map;
let busy = 0;
window.geoplanWorkspace = { state, timings };

// --- start ---------------------------------------------------------------------------------

async function start() {
  await loadLanguages();
  setLanguage(session.language() || 'zh');
  markLanguage();
  map = new PlanMap($('map'), { onMapClick, onSiteClick });
  window.geoplanWorkspace.map = map;
  wire();
  legendView($('legend'), GAP_CLASSES, SITE_STYLES);
  showTab(place().tab || 'scenario');
  const health = await api.get('/health').catch(() => ({ auth: 'on' }));
  state.authOn = !String(health.auth).startsWith('off');
  const key = session.key();
  if (state.authOn && !key) {
    askKey();
    return;
  }
  await signIn(key, { stored: true });
}

function askKey(error) {
  $('sign-in').hidden = false;
  if (error) showError('sign-in', error);
  $('sign-in-key').focus();
}

async function signIn(key, { remember = false, stored = false } = {}) {
  useKey(key);
  try {
    state.role = await findRole();
  } catch (error) {
    useKey(null);
    if (stored) session.forget();
    askKey(error);
    return;
  }
  if (key && !stored) session.remember(key, remember);
  clearError('sign-in');
  $('sign-in').hidden = true;
  $('sign-out').hidden = !state.authOn;
  showRole();
  await openRegions();
}

/** The key's role, as the service says (GET /me). */
async function findRole() {
  const me = await api.get('/me');
  return me.role;
}

function signOut() {
  session.forget();
  useKey(null);
  setPlace({ job: null });
  location.reload();
}

// --- regions and scenarios -----------------------------------------------------------------

async function openRegions() {
  const answer = await work(api.get('/regions'), 'region');
  const regions = answer?.regions || [];
  const select = $('region');
  select.replaceChildren(...regions.map((r) => el('option', { value: r.key, text: `${r.name_zh} ${r.name} · ${r.city}` })));
  const wanted = place().region;
  const key = regions.some((r) => r.key === wanted) ? wanted : regions[0]?.key;
  if (key) await openRegion(key, place().scenario || null);
  if (place().job) followJob(place().job);
}

async function openRegion(key, scenarioId) {
  state.region = key;
  $('region').value = key;
  setPlace({ region: key, scenario: scenarioId });
  // the figures first: coverage, boundary and scenarios at once; the layers after them
  state.change = null;
  map.setCircles(null);
  map.setProposals(null);
  const shown = showCoverage(scenarioId);
  const detail = work(api.get(`/regions/${key}`), 'region').then((d) => {
    state.detail = d;
    if (d) {
      map.setBoundary(d.boundary);
      map.fit(d.bbox);
    }
  });
  const streets = work(api.get(`/regions/${key}/streets`), 'region').then((s) => s && map.setStreets(s));
  await Promise.all([shown, detail, loadScenarios(scenarioId)]);
  if (scenarioId && !state.scenario) await showCoverage(null); // deleted meanwhile, or another team's
  await Promise.all([streets, showSites(), showGaps(), loadPresets()]);
  document.body.dataset.ready = 'true';
}

async function loadScenarios(selected) {
  const answer = await work(api.get('/scenarios', { region: state.region }), 'scenario');
  state.scenarios = answer?.scenarios || [];
  state.scenario = state.scenarios.find((s) => s.id === selected) || null;
  if (!state.scenario) setPlace({ scenario: null });
  renderScenarios();
}

function renderScenarios() {
  const select = $('scenario');
  select.replaceChildren(el('option', { value: '', text: t('scenario.none') }),
    ...state.scenarios.map((s) => el('option', { value: s.id, text: s.name })));
  select.value = state.scenario?.id || '';
  const s = state.scenario;
  $('scenario-info').textContent = s
    ? t('scenario.info', { existing: s.existing ?? '–', added: s.added.length, closed: s.closed.length, source: t(`source.${s.facilities_source}`) })
    : t('scenario.noneInfo');
  $('rename-name').value = s?.name || '';
  $('added-list').replaceChildren(...(s?.added || []).map((site) => siteLine(site, editable() &&
    el('button', { type: 'button', class: 'link', text: t('edit.remove'), onclick: () => applyEdit((now) => edits.withoutAdded(now, site.site_id), () => t('edit.removed', { name: site.name || site.site_id }), 'map') }))));
  $('closed-list').replaceChildren(...(s?.closed || []).map((id) => el('li', {}, el('span', { class: 'dot closed' }), el('span', { class: 'name', text: t('edit.closedSite', { id }) }),
    editable() && el('button', { type: 'button', class: 'link', text: t('edit.reopen'), onclick: () => applyEdit((now) => edits.withReopened(now, id), () => t('edit.reopened', { name: id }), 'map') }))));
  const ticked = new Set([...$('compare-choices').querySelectorAll('input:checked')].map((box) => box.value));
  if (s) ticked.add(s.id);
  $('compare-choices').replaceChildren(...state.scenarios.map((item) => el('li', {}, el('label', { class: 'check' },
    el('input', { type: 'checkbox', value: item.id, checked: ticked.has(item.id) }), ` ${item.name}`))));
  document.body.classList.toggle('has-scenario', Boolean(s));
  showRole();
}

async function selectScenario(id) {
  state.scenario = state.scenarios.find((s) => s.id === id) || null;
  state.change = null;
  setPlace({ scenario: state.scenario?.id });
  renderScenarios();
  map.setCircles(null);
  await Promise.allSettled([showCoverage(state.scenario?.id), showSites()]);
  await showGaps();
}

const scenarioQuery = (id = state.scenario?.id) => (id ? { scenario_id: id } : {});

async function showCoverage(scenarioId = state.scenario?.id) {
  const coverage = await work(api.get(`/regions/${state.region}/coverage`, scenarioQuery(scenarioId)), 'coverage');
  if (coverage) {
    clearError('coverage');
    state.coverage = coverage;
    renderCoverage();
  }
  return coverage;
}

function renderCoverage() {
  const c = state.coverage;
  if (!c) return;
  const name = state.scenario ? state.scenario.name : t('scenario.none');
  $('coverage-source').textContent = t(`coverage.source.${c.site_source}`, { name, sites: people(c.sites) });
  coverageTable($('coverage-table'), c, state.change);
  lastEditView($('last-edit'), state.change, c);
  if (!timings.load) {
    timings.load = performance.now();
    performance.mark('geoplan:coverage-shown');
  }
}

async function showSites() {
  const path = state.scenario ? `/scenarios/${state.scenario.id}/facilities` : `/regions/${state.region}/facilities`;
  const sites = await work(api.get(path), 'map');
  map.clearPending();
  // a region without a facility list is counted with every candidate open: show them then
  if (sites) map.setSites(sites, { candidates: !state.scenario && !sites.counts?.existing });
}

async function showGaps() {
  const gaps = await work(api.get(`/regions/${state.region}/coverage/gaps`, { ...scenarioQuery(), limit: GAP_LIMIT }), 'map');
  if (gaps) map.setGaps(gaps);
}

// --- edits -----------------------------------------------------------------------------------

function editable() {
  return state.role !== 'viewer';
}

/**
 * Change the scenario (`change(scenario)` gives the PATCH, from the scenario as it is then; `label()` says
 * what it was, in the language shown), and show the
 * service's coverage after it beside the coverage before. Edits run one after the other: a PATCH replaces
 * whole lists, so each one starts from the scenario the previous one left.
 */
function applyEdit(change, label, slot, startedAt = performance.now()) {
  const done = editing.then(() => patchAndCount(change, label, slot, startedAt));
  editing = done.catch(() => null);
  return done.then(async (saved) => {
    if (saved && saved.spec_hash === state.scenario?.spec_hash) {
      await showSites(); // after the figures, so that they do not share the service with them
      await showGaps();
    }
    return saved;
  });
}

let editing = Promise.resolve();

async function patchAndCount(change, label, slot, startedAt) {
  const scenario = state.scenario;
  const before = state.coverage.rows;
  clearError(slot);
  const saved = await work(patchLatest(scenario, change), slot);
  if (!saved) {
    map.clearPending();
    return null;
  }
  state.scenario = saved;
  state.scenarios = state.scenarios.map((s) => (s.id === saved.id ? saved : s));
  state.change = { label, before };
  renderScenarios();
  if (await showCoverage()) {
    timings.edits.push(performance.now() - startedAt);
    performance.measure('geoplan:edit', { start: startedAt });
  }
  return saved;
}

/**
 * PATCH the change made to the scenario as read; if another planner (or tab) changed it since (412), make the
 * change again to what it holds now, so that neither edit is lost.
 */
async function patchLatest(scenario, change) {
  const path = `/scenarios/${scenario.id}`;
  try {
    return await api.patch(path, change(scenario), scenario.version);
  } catch (error) {
    if (error.status !== 412) throw error;
    const latest = await api.get(path);
    return api.patch(path, change(latest), latest.version);
  }
}

function onMapClick(latlng, event, gap) {
  clearError('map');
  if (state.mode === 'station' || state.mode === 'canteen') {
    if (!state.scenario) return showError('map', { detail: t('edit.needScenario') });
    const startedAt = event?.originalEvent?.timeStamp ?? performance.now(); // the click itself
    map.showPending(latlng);
    const site = { lon: round6(latlng.lng), lat: round6(latlng.lat), kind: state.mode };
    return applyEdit((now) => edits.withAdded(now, site), () => t('edit.added', { kind: t(`kind.${site.kind}`), lon: site.lon, lat: site.lat }), 'map', startedAt);
  }
  if (state.mode === 'inspect') return showPointCircles(latlng, gap);
  return null;
}

function onSiteClick(feature, event) {
  const props = feature.properties;
  clearError('map');
  if (state.mode === 'station' || state.mode === 'canteen') {
    const [lon, lat] = feature.geometry.coordinates; // on a candidate site: a new facility there
    return onMapClick(props.status === 'candidate' ? L.latLng(lat, lon) : event.latlng, event);
  }
  if (state.mode === 'close') {
    if (!state.scenario) return showError('map', { detail: t('edit.needScenario') });
    const toggle = edits.closeToggle(state.scenario, props);
    if (!toggle) return showError('map', { detail: t('edit.notFacility') });
    // the action is decided once, from the scenario the planner saw; a retry after 412 does the same action, not a new toggle
    const act = { 'edit.removed': edits.withoutAdded, 'edit.reopened': edits.withReopened, 'edit.closed': edits.withClosed }[toggle.what];
    return applyEdit((now) => act(now, props.site_id), () => t(toggle.what, { name: props.name || props.site_id }), 'map');
  }
  return showSiteCircles(props, event.latlng);
}

async function showSiteCircles(props, latlng) {
  const name = props.name || props.site_id;
  if (props.change === 'closed') {
    map.popup(latlng, el('div', { class: 'popup' }, el('b', { text: name }), el('p', { text: t('edit.closedSite', { id: props.site_id }) })));
    return;
  }
  const circles = await work(api.get(`/regions/${state.region}/care-circles`, { site_id: props.site_id, ...scenarioQuery() }), 'map');
  if (!circles) return;
  map.setCircles(circles);
  map.popup(latlng, circlesPopup(circles, name));
}

/** The care circles a station here would have; on a gap cell, also the older people the cell has beyond the walk. */
async function showPointCircles(latlng, gap) {
  const query = { lon: round6(latlng.lng), lat: round6(latlng.lat) };
  const circles = await work(api.get(`/regions/${state.region}/care-circles`, query), 'map');
  if (!circles) {
    if (gap) map.popup(latlng, gapPopup(gap));
    return;
  }
  map.setCircles(circles);
  map.popup(latlng, el('div', {}, circlesPopup(circles, t('circles.point')), gap ? gapPopup(gap) : null));
}

function setMode(mode) {
  state.mode = mode;
  map.setMode(mode);
  document.querySelectorAll('button[data-mode]').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.mode === mode)));
}

const round6 = (v) => Math.round(v * 1e6) / 1e6;

// --- scenario forms -------------------------------------------------------------------------

async function createScenario(event) {
  event.preventDefault();
  clearError('create');
  const name = $('create-name').value.trim();
  const created = await work(api.post('/scenarios', { region: state.region, name }), 'create');
  if (!created) return;
  $('create-name').value = '';
  state.scenarios = [created, ...state.scenarios];
  await selectScenario(created.id);
}

async function renameScenario(event) {
  event.preventDefault();
  clearError('rename');
  const saved = await work(api.patch(`/scenarios/${state.scenario.id}`, { name: $('rename-name').value.trim() }), 'rename');
  if (!saved) return;
  state.scenario = saved;
  state.scenarios = state.scenarios.map((s) => (s.id === saved.id ? saved : s));
  renderScenarios();
  renderCoverage();
}

async function uploadFacilities(event) {
  event.preventDefault();
  clearError('upload');
  $('upload-result').textContent = '';
  const form = new FormData();
  form.append('file', $('upload-file').files[0]);
  form.append('coord_system', $('upload-coord').value);
  form.append('status', $('upload-status').value);
  const answer = await work(api.upload(`/scenarios/${state.scenario.id}/facilities`, form), 'upload');
  if (!answer) return;
  $('upload-result').textContent = t('upload.done', { count: answer.count, total: answer.total });
  const before = state.coverage.rows;
  state.scenario = (await work(api.get(`/scenarios/${state.scenario.id}`), 'upload')) || state.scenario;
  state.scenarios = state.scenarios.map((s) => (s.id === state.scenario.id ? state.scenario : s));
  state.change = { label: () => t('edit.uploaded', { count: answer.count }), before };
  renderScenarios();
  await Promise.allSettled([showCoverage(), showSites()]);
  await showGaps();
}

// --- recommendations ------------------------------------------------------------------------

async function startRecommendation(event) {
  event.preventDefault();
  clearError('recommend');
  const value = (id) => Number($(id).value);
  const request = edits.recommendationRequest({
    region: state.region, scenarioId: state.scenario?.id, model: $('recommend-model').value,
    stations: value('recommend-stations'), canteens: value('recommend-canteens'), targetPct: value('recommend-target'), timeLimit: value('recommend-time'),
  });
  const job = await work(api.post('/recommendations', request), 'recommend');
  if (job) followJob(job.id);
}

async function followJob(id) {
  setPlace({ job: id });
  state.proposals = [];
  $('recommend-result').hidden = true;
  $('recommend-progress').hidden = false;
  const seen = performance.now();
  for (;;) {
    let job;
    try {
      job = await api.get(`/recommendations/${id}`);
    } catch (error) {
      showError('recommend', error);
      break;
    }
    state.job = job;
    $('recommend-status').textContent = t(`job.${job.status}`, { seconds: Math.round((performance.now() - seen) / 1000) });
    if (job.status === 'succeeded') {
      showProposals(job);
      break;
    }
    if (job.status === 'failed') {
      showError('recommend', { detail: job.error?.message || t('job.failed'), kind: job.error?.type });
      break;
    }
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
  $('recommend-progress').hidden = true;
  setPlace({ job: null });
}

function showProposals(job) {
  const plan = job.result.plan;
  state.proposals = edits.proposalsOf(job);
  map.setProposals(state.proposals);
  const top = plan.coverage.filter((r) => r.group === 'pop_60').sort((a, b) => b.threshold_min - a.threshold_min)[0];
  $('recommend-summary').textContent = t('recommend.summary', {
    n: state.proposals.length, status: plan.status, gain: top ? people(top.gain) : '–', minutes: top?.threshold_min ?? '',
  });
  $('proposal-list').replaceChildren(...state.proposals.map((site, i) => el('li', {},
    el('label', { class: 'check' }, el('input', { type: 'checkbox', value: String(i), checked: true }),
      el('span', { class: 'name', text: ` ${site.name || site.site_id}` })),
    el('small', { text: `${t(`kind.${site.kind}`)} · ${t('recommend.gain', { people: people(site.gain_pop_60) })}` }))));
  $('recommend-result').hidden = false;
  showRole();
}

async function acceptProposals() {
  clearError('accept');
  const chosen = [...$('proposal-list').querySelectorAll('input:checked')].map((box) => state.proposals[Number(box.value)]);
  if (!chosen.length) return;
  const saved = await applyEdit((now) => edits.withProposals(now, chosen), () => t('edit.accepted', { n: chosen.length }), 'accept');
  if (saved) map.setProposals(null);
}

// --- review, comparison, downloads ----------------------------------------------------------

async function loadPresets() {
  if (state.presets.length) return;
  const presets = (await work(api.get('/targets/presets'), 'review'))?.presets || [];
  state.presets = presets;
  $('review-preset').replaceChildren(...presets.map((p) => el('option', { value: p.key, text: `${p.name}${p.place ? ` · ${p.place}` : ''}` })));
  $('review-preset').value = place().preset || 'shuimogou';
}

async function runReview(event) {
  event?.preventDefault();
  clearError('review');
  const preset = $('review-preset').value;
  setPlace({ preset });
  $('review-result').replaceChildren(el('p', { class: 'muted', text: t('review.running') }));
  const review = await work(api.get(`/regions/${state.region}/targets`, { preset, ...scenarioQuery() }), 'review');
  state.review = review;
  if (review) reviewView($('review-result'), review);
  else $('review-result').replaceChildren();
}

async function runCompare() {
  clearError('compare');
  const ids = [...$('compare-choices').querySelectorAll('input:checked')].map((box) => box.value);
  if (ids.length < 2) return showError('compare', { detail: t('compare.needTwo') });
  const result = await work(api.get('/scenarios/compare', { ids }), 'compare');
  state.compared = result;
  if (result) compareView($('compare-result'), result);
  return result;
}

const DOWNLOADS = {
  workbook: () => [`/regions/${state.region}/targets/workbook`, { preset: $('review-preset').value || 'shuimogou', ...scenarioQuery() },
    `${state.region}_${$('review-preset').value || 'shuimogou'}_review${state.scenario ? `_${state.scenario.id}` : ''}.xlsx`],
  layers: () => (state.scenario
    ? [`/scenarios/${state.scenario.id}/facilities`, {}, `${state.region}_${state.scenario.id}_facilities.geojson`]
    : [`/regions/${state.region}/facilities`, {}, `${state.region}_facilities.geojson`]),
  map: () => (state.scenario
    ? [`/scenarios/${state.scenario.id}/map`, {}, `${state.region}_${state.scenario.id}_map.html`]
    : [`/regions/${state.region}/map`, {}, `${state.region}_map.html`]),
};

async function download(kind) {
  clearError(kind);
  const [path, query, filename] = DOWNLOADS[kind]();
  const blob = await work(api.download(path, query), kind);
  if (!blob) return;
  const link = el('a', { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// --- the page around it ---------------------------------------------------------------------

/** A request's answer, or null when it failed: then the service's message is shown next to `slot`. */
async function work(promise, slot) {
  busy += 1;
  $('busy').textContent = t('busy');
  try {
    return await promise;
  } catch (error) {
    if (error.status === 403 && state.role !== 'viewer' && /\bviewer key\b/.test(error.detail || '')) {
      state.role = 'viewer';
      showRole();
    }
    showError(slot, error);
    return null;
  } finally {
    busy -= 1;
    if (!busy) $('busy').textContent = '';
  }
}

function showRole() {
  const badge = $('role-badge');
  badge.hidden = !state.role;
  badge.textContent = state.role ? t(`role.${state.role}`) : '';
  badge.dataset.role = state.role || '';
  const readOnly = state.role === 'viewer';
  document.querySelectorAll('.planner-only').forEach((node) => {
    const off = readOnly || (node.classList.contains('needs-scenario') && !state.scenario);
    node.querySelectorAll('input, select, button').forEach((c) => { c.disabled = off; });
    if (node.matches('button')) node.disabled = off;
    node.title = readOnly ? t('role.readOnly') : off ? t('edit.needScenario') : '';
  });
  if (readOnly && state.mode !== 'inspect') setMode('inspect');
}

function showTab(name) {
  document.querySelectorAll('[data-tab]').forEach((b) => b.setAttribute('aria-selected', String(b.dataset.tab === name)));
  document.querySelectorAll('[data-panel]').forEach((p) => { p.hidden = p.dataset.panel !== name; });
  setPlace({ tab: name });
}

function markLanguage() {
  document.querySelectorAll('[data-lang]').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.lang === language())));
}

function switchLanguage(lang) {
  session.setLanguage(lang);
  setLanguage(lang);
  markLanguage();
  legendView($('legend'), GAP_CLASSES, SITE_STYLES);
  map.relabel();
  renderScenarios();
  renderCoverage();
  if (state.review) reviewView($('review-result'), state.review);
  if (state.compared) compareView($('compare-result'), state.compared);
  if (state.job?.status === 'succeeded') showProposals(state.job);
}

function wire() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('sign-in-key').value.trim(), { remember: $('sign-in-remember').checked });
  });
  $('sign-out').addEventListener('click', signOut);
  document.querySelectorAll('[data-lang]').forEach((b) => b.addEventListener('click', () => switchLanguage(b.dataset.lang)));
  document.querySelectorAll('[data-tab]').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab)));
  document.querySelectorAll('button[data-mode]').forEach((b) => b.addEventListener('click', () => setMode(b.dataset.mode)));
  document.querySelectorAll('[data-download]').forEach((b) => b.addEventListener('click', () => download(b.dataset.download)));
  $('region').addEventListener('change', (event) => openRegion(event.target.value, null));
  $('scenario').addEventListener('change', (event) => selectScenario(event.target.value || null));
  $('create-form').addEventListener('submit', createScenario);
  $('rename-form').addEventListener('submit', renameScenario);
  $('upload-form').addEventListener('submit', uploadFacilities);
  $('recommend-form').addEventListener('submit', startRecommendation);
  $('recommend-model').addEventListener('change', (event) => { document.body.dataset.model = event.target.value; });
  $('accept-proposals').addEventListener('click', acceptProposals);
  $('review-form').addEventListener('submit', runReview);
  $('compare-run').addEventListener('click', runCompare);
  setMode('inspect');
}

start();

// The panels drawn from the service's answers; figures are the service's, only formatted here.

import { number, people, percent, signedPeople, t } from './i18n.js';

export const GROUPS = ['pop_60', 'pop_80'];

/** An element with attributes (`text` sets its text, `on*` adds a listener) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function errorSlot(name) {
  return document.getElementById(`${name}-error`) || document.querySelector(`[data-error-for="${name}"]`);
}

/** The service's message next to the control that caused it (with its kind, e.g. input_error). */
export function showError(name, error) {
  const slot = errorSlot(name);
  if (!slot) throw error;
  slot.replaceChildren(el('span', { text: error.detail || String(error) }), error.kind ? el('code', { text: ` ${error.kind}` }) : '');
  slot.dataset.status = error.status ?? '';
}

export function clearError(name) {
  const slot = errorSlot(name);
  if (slot) {
    slot.replaceChildren();
    delete slot.dataset.status;
  }
}

export function groupLabel(group) {
  return t(`group.${group}`);
}

/** 60+ and 80+ within each walk: people and share, with the change the last edit made. */
export function coverageTable(table, coverage, change) {
  const thresholds = [...new Set(coverage.rows.map((r) => r.threshold_min))].sort((a, b) => a - b);
  const at = (rows, group, threshold) => rows.find((r) => r.group === group && r.threshold_min === threshold);
  const head = el('tr', {}, el('th', { text: t('coverage.group') }), thresholds.map((m) => el('th', { text: t('coverage.within', { minutes: m }) })));
  const body = GROUPS.filter((g) => coverage.rows.some((r) => r.group === g)).map((group) => el('tr', {},
    el('th', {}, groupLabel(group), el('small', { text: people(at(coverage.rows, group, thresholds[0]).population) })),
    thresholds.map((threshold) => {
      const row = at(coverage.rows, group, threshold);
      const before = change && at(change.before, group, threshold);
      const delta = before ? row.covered - before.covered : null;
      return el('td', { dataset: { cell: `${group}:${threshold}`, covered: row.covered } },
        el('span', { class: 'people', text: people(row.covered) }),
        el('span', { class: 'share', text: percent(row.covered_pct) }),
        delta !== null ? el('span', { class: `delta ${delta > 0.5 ? 'up' : delta < -0.5 ? 'down' : ''}`, dataset: { delta: delta }, text: signedPeople(delta) }) : null);
    })));
  table.replaceChildren(el('thead', {}, head), el('tbody', {}, body));
}

/** What the last edit changed at the longest walk, in people (the service's figures before and after). */
export function lastEditView(box, change, coverage) {
  if (!change) {
    box.hidden = true;
    return;
  }
  const top = Math.max(...coverage.rows.map((r) => r.threshold_min));
  const parts = GROUPS.map((group) => {
    const after = coverage.rows.find((r) => r.group === group && r.threshold_min === top);
    const before = change.before.find((r) => r.group === group && r.threshold_min === top);
    if (!after || !before) return null;
    const delta = after.covered - before.covered;
    const points = after.covered_pct - before.covered_pct;
    return el('li', {},
      t('edit.within', { group: groupLabel(group), minutes: top }), ' ',
      el('strong', { class: delta >= 0 ? 'up' : 'down', dataset: { gain: `${group}:${top}`, value: delta }, text: signedPeople(delta) }),
      ' ', t('unit.people'), ' ', el('small', { text: t('edit.points', { points: (points >= 0 ? '+' : '') + points.toFixed(2) }) }));
  });
  box.replaceChildren(el('p', { class: 'what', text: change.label() }), el('ul', {}, parts));
  box.hidden = false;
}

export function siteLine(site, action) {
  return el('li', {}, el('span', { class: `dot kind-${site.kind}` }), el('span', { class: 'name', text: site.name || site.site_id }),
    el('small', { text: t(`kind.${site.kind}`) }), action);
}

/** The review: the verdict, each indicator against its target, and the units that fail. */
export function reviewView(root, review) {
  const verdict = review.passed === true ? 'pass' : review.passed === false ? 'fail' : 'unknown';
  const mark = (v) => (v === true ? '✓' : v === false ? '✗' : '–');
  const rows = review.summary.map((row) => el('tr', { class: row.pass === true ? 'pass' : row.pass === false ? 'fail' : '' },
    el('td', { text: mark(row.pass) }),
    el('td', {}, el('span', { text: row.indicator_name || row.id }), el('small', { text: row.tier ? ` · ${t(`kind.${row.tier}`)}` : '' })),
    el('td', { text: row.value === null ? row.status : `${number(row.value)} ${row.unit}` }),
    el('td', { text: row.target })));
  const failing = (units, code, title) => {
    const bad = units.filter((u) => u.passes === false);
    return el('details', {}, el('summary', { text: t(title, { n: bad.length, total: units.filter((u) => u[code] !== 'outside').length }) }),
      el('ul', { class: 'failing' }, bad.map((u) => el('li', {}, el('b', { text: u.name || u[code] }), ' ', el('small', { text: u.failing || '' })))));
  };
  root.replaceChildren(
    el('p', { class: `verdict ${verdict}`, text: t(`review.${verdict}`, { plan: review.targets.name }) }),
    review.units.approximate ? el('p', { class: 'muted', text: t('review.approximate') }) : null,
    el('table', { class: 'review' }, el('thead', {}, el('tr', {}, ['', 'review.indicator', 'review.value', 'review.target'].map((h) => el('th', { text: h ? t(h) : '' })))), el('tbody', {}, rows)),
    failing(review.streets, 'street_code', review.units.approximate ? 'review.failingZones' : 'review.failingStreets'),
    failing(review.communities, 'community_code', 'review.failingCommunities'),
    review.missing_attributes.length ? el('p', { class: 'muted', text: t('review.missing', { columns: review.missing_attributes.join(', ') }) }) : null,
  );
}

/** Scenarios side by side at one walk: sites, cost, covered 60+ and 80+, and the change from the first. */
export function compareView(root, result) {
  const head = el('tr', {}, ['compare.name', 'compare.sites', 'compare.added', 'compare.closed'].map((h) => el('th', { text: t(h) })),
    GROUPS.map((g) => el('th', { text: t('compare.covered', { group: groupLabel(g), minutes: result.threshold_min }) })));
  const rows = result.scenarios.map((item, i) => el('tr', { dataset: { scenario: item.scenario_id } },
    el('td', { text: item.name }), el('td', { text: item.sites }), el('td', { text: item.added.length }), el('td', { text: item.closed.length }),
    GROUPS.map((g) => el('td', {}, el('span', { class: 'people', text: people(item.covered[g]) }), el('span', { class: 'share', text: percent(item.covered_pct[g]) }),
      i > 0 ? el('span', { class: `delta ${item.change[g] > 0.5 ? 'up' : item.change[g] < -0.5 ? 'down' : ''}`, text: signedPeople(item.change[g]) }) : null))));
  root.replaceChildren(el('table', { class: 'figures compare' }, el('thead', {}, head), el('tbody', {}, rows)));
}

/** The people inside a care circle, per walk. */
export function circlesPopup(collection, title) {
  const rows = [...collection.features].sort((a, b) => a.properties.threshold_min - b.properties.threshold_min).map((f) => el('tr', {},
    el('th', { text: t('coverage.within', { minutes: f.properties.threshold_min }) }),
    GROUPS.map((g) => el('td', { text: `${groupLabel(g)} ${people(f.properties.people[g])}` }))));
  return el('div', { class: 'popup' }, el('b', { text: title }), el('table', {}, rows));
}

export function gapPopup(props) {
  const walk = props.on_foot === false ? t('gap.noStreet') : props.nearest_time_min === null ? t('gap.beyond') : t('gap.minutes', { minutes: Math.round(props.nearest_time_min) });
  return el('div', { class: 'popup' }, el('b', { text: t('gap.title') }), el('table', {},
    GROUPS.map((g) => el('tr', {}, el('th', { text: groupLabel(g) }), el('td', { text: people(props[g]) }))),
    el('tr', {}, el('th', { text: t('gap.walk') }), el('td', { text: walk }))));
}

export function legendView(root, gapClasses, siteStyles) {
  const swatch = (colour) => el('i', { class: 'swatch', dataset: { colour } });
  const dot = (name) => el('i', { class: `legend-dot ${name}` });
  let low = 0;
  const gaps = gapClasses.map((c) => {
    const label = c.below === Infinity ? `≥ ${low}` : `${low}–${c.below}`;
    low = c.below;
    return el('li', {}, swatch(c.colour), label);
  });
  root.replaceChildren(
    el('b', { text: t('legend.gaps') }), el('ul', {}, gaps),
    el('b', { text: t('legend.sites') }),
    el('ul', {}, Object.keys(siteStyles).filter((s) => s !== 'pending').map((s) => el('li', {}, dot(s), t(`legend.${s}`)))),
    el('b', { text: t('legend.circles') }),
    el('ul', {}, [5, 10, 15].map((m) => el('li', {}, el('i', { class: `swatch circle-${m}` }), t('coverage.within', { minutes: m })))),
  );
  // colours come from the map's own classes, set without inline style attributes
  root.querySelectorAll('.swatch[data-colour]').forEach((s) => { s.style.background = s.dataset.colour; });
}

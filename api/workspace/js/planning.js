// Edits of a scenario as the service takes them (api/schemas/scenarios.py), and recommendation requests.
// A PATCH replaces the whole list it names, so every edit sends the scenario's list with the change made.

const SITE_FIELDS = ['lon', 'lat', 'site_id', 'name', 'kind', 'capacity', 'cost'];

/** A stored added site (WGS84, as GET /scenarios/{id} gives it) as a SiteIn. */
export function siteIn(site) {
  return Object.fromEntries(SITE_FIELDS.filter((f) => site[f] !== null && site[f] !== undefined).map((f) => [f, site[f]]));
}

export function withAdded(scenario, site) {
  return { added: [...scenario.added.map(siteIn), site] };
}

export function withoutAdded(scenario, siteId) {
  return { added: scenario.added.filter((s) => s.site_id !== siteId).map(siteIn) };
}

export function withClosed(scenario, siteId) {
  return { closed: [...new Set([...scenario.closed, siteId])] };
}

export function withReopened(scenario, siteId) {
  return { closed: scenario.closed.filter((id) => id !== siteId) };
}

/** Proposed sites as added sites: their own ids stay candidate ids, so the service gives them new ones. */
export function withProposals(scenario, proposals) {
  const accepted = proposals.map((p) => siteIn({ lon: p.lon, lat: p.lat, name: p.name, kind: p.kind, capacity: p.capacity, cost: p.cost }));
  return { added: [...scenario.added.map(siteIn), ...accepted] };
}

/** What a click on a site does in the close tool: close an existing one, reopen a closed one, drop an added one. */
export function closeToggle(scenario, props) {
  if (props.change === 'added') return { edit: withoutAdded(scenario, props.site_id), what: 'edit.removed' };
  if (props.change === 'closed' || scenario.closed.includes(props.site_id)) return { edit: withReopened(scenario, props.site_id), what: 'edit.reopened' };
  if (props.status === 'candidate') return null;
  return { edit: withClosed(scenario, props.site_id), what: 'edit.closed' };
}

/** POST /recommendations: most people for N stations/canteens (mclp), or fewest sites for a 60+ share (target). */
export function recommendationRequest({ region, scenarioId, model, stations, canteens, targetPct, timeLimit }) {
  const kinds = [];
  if (model === 'target') {
    kinds.push({ kind: 'station', target_pct: targetPct, ...(stations > 0 ? { p: stations } : {}) });
  } else {
    if (stations > 0) kinds.push({ kind: 'station', p: stations });
    if (canteens > 0) kinds.push({ kind: 'canteen', p: canteens });
  }
  return { region, scenario_id: scenarioId || null, model, kinds, time_limit_s: timeLimit };
}

/** The proposed sites of a finished recommendation, in build order. */
export function proposalsOf(job) {
  const sites = job.result?.plan?.new_sites || [];
  return [...sites].sort((a, b) => (a.phase ?? 0) - (b.phase ?? 0));
}

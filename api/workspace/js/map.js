// The map: the region's streets drawn as the base layer (no web tiles), its boundary, the older
// people beyond the walk, the facilities of the region or scenario, care circles and proposed sites.
/* global L */

import { people, t } from './i18n.js';

export const GAP_CLASSES = [
  { below: 10, colour: '#fdd49e' },
  { below: 25, colour: '#fdbb84' },
  { below: 50, colour: '#fc8d59' },
  { below: 100, colour: '#e34a33' },
  { below: Infinity, colour: '#b30000' },
];
const CIRCLE_COLOURS = { 5: '#0868ac', 10: '#4ba3c3', 15: '#a8ddb5' };
const STREET = { color: '#a3a3a3', weight: 0.8, opacity: 0.9 };
const MAJOR = { color: '#737373', weight: 1.8, opacity: 0.9 };
export const SITE_STYLES = {
  existing: { radius: 6, color: '#ffffff', weight: 1.5, fillColor: '#6a3d9a', fillOpacity: 1 },
  canteen: { radius: 6, color: '#ffffff', weight: 1.5, fillColor: '#ff7f00', fillOpacity: 1 },
  added: { radius: 8, color: '#ffffff', weight: 2, fillColor: '#d94801', fillOpacity: 1 },
  closed: { radius: 6, color: '#cb181d', weight: 2.5, fillColor: '#d9d9d9', fillOpacity: 1 },
  candidate: { radius: 4, color: '#222222', weight: 1.2, fillColor: '#ffffff', fillOpacity: 1 },
  pending: { radius: 8, color: '#d94801', weight: 2, fillColor: '#ffffff', fillOpacity: 1, dashArray: '3 2' },
};

export function gapColour(count) {
  return GAP_CLASSES.find((c) => count < c.below).colour;
}

export function siteStyle(props) {
  if (props.status === 'candidate') return SITE_STYLES.candidate;
  if (props.change === 'closed' || props.status === 'closed') return SITE_STYLES.closed;
  if (props.change === 'added') return SITE_STYLES.added;
  return props.kind === 'canteen' ? SITE_STYLES.canteen : SITE_STYLES.existing;
}

export class PlanMap {
  constructor(element, { onMapClick, onSiteClick }) {
    this.map = L.map(element, { zoomSnap: 0.25, zoomDelta: 0.5, attributionControl: false });
    L.control.attribution({ prefix: false }).addAttribution('© OpenStreetMap contributors · WorldPop · geoplan').addTo(this.map);
    L.control.scale({ imperial: false, maxWidth: 150 }).addTo(this.map);
    const pane = (name, z) => {
      this.map.createPane(name).style.zIndex = z;
      return name;
    };
    this.panes = { streets: pane('streets', 250), gaps: pane('gaps', 300), circles: pane('circles', 350), boundary: pane('boundary', 420), sites: pane('sites', 450) };
    this.map.getPane('boundary').style.pointerEvents = 'none';
    this.map.getPane('circles').style.pointerEvents = 'none';
    this.canvas = { streets: L.canvas({ pane: 'streets' }), gaps: L.canvas({ pane: 'gaps', tolerance: 0 }) };
    this.layers = {};
    this.mode = 'inspect';
    this.onSiteClick = onSiteClick;
    this.map.on('click', (event) => {
      const gap = this.clickedGap;
      this.clickedGap = null;
      onMapClick(event.latlng, event, gap);
    });
  }

  fit(bbox) {
    const [west, south, east, north] = bbox;
    this.map.fitBounds([[south, west], [north, east]], { padding: [12, 12] });
  }

  setMode(mode) {
    this.mode = mode;
    this.map.getContainer().dataset.mode = mode;
  }

  /** Put `layer` in place of the named one, shown as the old one was (`keep`), else as `show` says. */
  _replace(name, layer, { show = true, keep = true } = {}) {
    const old = this.layers[name];
    const wasShown = old && keep ? this.map.hasLayer(old) : show;
    if (old) this.map.removeLayer(old);
    this.layers[name] = layer;
    if (layer && wasShown) layer.addTo(this.map);
    this._control();
  }

  setStreets(collection) {
    this._replace('streets', L.geoJSON(collection, {
      renderer: this.canvas.streets, interactive: false,
      style: (f) => (f.properties.class === 'major' ? MAJOR : STREET),
    }));
  }

  setBoundary(collection) {
    this._replace('boundary', L.geoJSON(collection, {
      pane: this.panes.boundary, interactive: false,
      style: { color: '#333333', weight: 2, dashArray: '6 4', fill: false },
    }));
  }

  setGaps(collection) {
    const layer = L.geoJSON(collection, {
      renderer: this.canvas.gaps,
      style: (f) => ({ stroke: false, fillColor: gapColour(f.properties.pop_60 || 0), fillOpacity: 0.75 }),
      onEachFeature: (feature, cell) => cell.on('click', () => { this.clickedGap = feature.properties; }), // the map's click follows
    });
    this.gapCount = collection.features.length;
    this._replace('gaps', layer);
  }

  /** Facilities, and candidate sites (shown at first when they stand in for a missing facility list). */
  setSites(collection, { candidates: showCandidates = false } = {}) {
    const facilities = { ...collection, features: collection.features.filter((f) => f.properties.status !== 'candidate') };
    const candidates = { ...collection, features: collection.features.filter((f) => f.properties.status === 'candidate') };
    const draw = (data) => L.geoJSON(data, {
      pointToLayer: (feature, latlng) => L.circleMarker(latlng, { ...siteStyle(feature.properties), pane: this.panes.sites }),
      onEachFeature: (feature, marker) => {
        marker.bindTooltip(() => text(feature.properties.name || feature.properties.site_id));
        marker.on('click', (event) => {
          L.DomEvent.stopPropagation(event);
          this.onSiteClick(feature, event);
        });
      },
    });
    this._replace('sites', draw(facilities));
    const standInChanged = this.candidatesStandIn !== showCandidates;
    this.candidatesStandIn = showCandidates;
    this._replace('candidates', draw(candidates), { show: showCandidates, keep: !standInChanged });
  }

  /** A site drawn at once where the planner clicked, until the service's answer redraws the sites. */
  showPending(latlng) {
    this.clearPending();
    this.pending = L.circleMarker(latlng, { ...SITE_STYLES.pending, pane: this.panes.sites, interactive: false }).addTo(this.map);
  }

  clearPending() {
    if (this.pending) this.map.removeLayer(this.pending);
    this.pending = null;
  }

  setCircles(collection) {
    if (!collection) {
      this._replace('circles', null);
      return;
    }
    const ordered = { ...collection, features: [...collection.features].sort((a, b) => b.properties.threshold_min - a.properties.threshold_min) };
    this._replace('circles', L.geoJSON(ordered, {
      pane: this.panes.circles, interactive: false,
      style: (f) => ({ stroke: true, weight: 1, color: CIRCLE_COLOURS[f.properties.threshold_min] || '#4ba3c3', fillColor: CIRCLE_COLOURS[f.properties.threshold_min] || '#4ba3c3', fillOpacity: 0.35 }),
    }));
  }

  /** Proposed sites, numbered in build order. */
  setProposals(sites) {
    if (!sites || !sites.length) {
      this._replace('proposals', null);
      return;
    }
    const markers = sites.map((site, i) => L.marker([site.lat, site.lon], {
      icon: L.divIcon({ className: `proposal-icon kind-${site.kind}`, html: String(i + 1), iconSize: [22, 22] }),
      keyboard: false,
    }).bindTooltip(() => text(`${i + 1}. ${site.name || site.site_id}: ${t('recommend.gain', { people: people(site.gain_pop_60) })}`)));
    this._replace('proposals', L.featureGroup(markers));
  }

  popup(latlng, node) {
    L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(node).openOn(this.map);
  }

  /** The layer list, in the current language. */
  _control() {
    if (this.control) this.control.remove();
    const names = { streets: 'layer.streets', boundary: 'layer.boundary', gaps: 'layer.gaps', circles: 'layer.circles', sites: 'layer.sites', candidates: 'layer.candidates', proposals: 'layer.proposals' };
    const overlays = {};
    for (const [name, label] of Object.entries(names)) {
      if (this.layers[name]) overlays[t(label)] = this.layers[name];
    }
    this.control = L.control.layers(null, overlays, { collapsed: false, position: 'topright' }).addTo(this.map);
  }

  relabel() {
    this._control();
  }
}

function text(value) {
  const span = document.createElement('span');
  span.textContent = value;
  return span;
}

// What survives a reload: the key (this tab, or this computer if asked), the language, and the
// region, scenario, tab and running recommendation in the address (#region=...&scenario=...).

const KEY = 'geoplan.key';
const LANG = 'geoplan.lang';

export const session = {
  key: () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY),
  remember(secret, everywhere) {
    sessionStorage.setItem(KEY, secret);
    if (everywhere) localStorage.setItem(KEY, secret);
  },
  forget() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
  language: () => localStorage.getItem(LANG),
  setLanguage: (lang) => localStorage.setItem(LANG, lang),
};

export function place() {
  return Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
}

/** Change parts of the address (null removes one) without a new history entry. */
export function setPlace(changes) {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === '') params.delete(name);
    else params.set(name, value);
  }
  history.replaceState(null, '', `${location.pathname}${location.search}#${params}`);
}

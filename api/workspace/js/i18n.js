// Every string the planner reads, in Chinese and English (i18n/zh.json, i18n/en.json).

export const LANGUAGES = ['zh', 'en'];
const tables = {};
let current = 'zh';

export async function loadLanguages() {
  await Promise.all(LANGUAGES.map(async (lang) => {
    const response = await fetch(`i18n/${lang}.json`);
    tables[lang] = await response.json();
  }));
}

export function language() {
  return current;
}

export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : 'zh';
  document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
  document.title = t('app.pageTitle');
  translate(document);
}

/** The string for `name` in the current language, with {placeholders} filled from `vars`. */
export function t(name, vars = {}) {
  const text = tables[current]?.[name] ?? tables.zh?.[name] ?? name;
  return text.replace(/\{(\w+)\}/g, (match, field) => (field in vars ? String(vars[field]) : match));
}

export function translate(root) {
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  root.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
}

const locale = () => (current === 'zh' ? 'zh-CN' : 'en-US');

/** People, whole, with thousands separators. */
export function people(value) {
  return value === null || value === undefined ? '–' : Math.round(value).toLocaleString(locale());
}

/** A change in people, signed: +1,234 or −56. */
export function signedPeople(value) {
  const whole = Math.round(value);
  if (whole === 0) return '±0';
  return (whole > 0 ? '+' : '−') + Math.abs(whole).toLocaleString(locale());
}

export function percent(value, digits = 1) {
  return value === null || value === undefined ? '–' : `${Number(value).toFixed(digits)}%`;
}

export function number(value, digits = 1) {
  return value === null || value === undefined ? '–' : Number(value).toLocaleString(locale(), { maximumFractionDigits: digits });
}

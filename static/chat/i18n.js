// The page's words in the reader's language. Django's JavaScript catalog
// (GET /jsi18n/, a classic script in <head> that runs before any module) puts
// `django.gettext` and `django.ngettext` on the page; `makemessages -d djangojs`
// finds the calls below by their names, so call them with string literals:
//
//     gettext("Copied")
//     format(gettext("The next answer uses %(model)s."), { model: label })
//     format(ngettext("%(count)s file", "%(count)s files", n), { count: n })
//
// Without the catalog (a page that does not load it) the English text stands.

function catalog() {
  return globalThis.django && globalThis.django.gettext ? globalThis.django : null;
}

export function gettext(message) {
  const django = catalog();
  return django ? django.gettext(message) : message;
}

export function ngettext(singular, plural, count) {
  const django = catalog();
  if (django) return django.ngettext(singular, plural, count);
  return count === 1 ? singular : plural;
}

// Fills `%(name)s` placeholders (the form Python's gettext uses, so one
// translator's habit serves both) from `values`; a missing value stays visible
// as its placeholder rather than becoming "undefined".
export function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (placeholder, name) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : placeholder,
  );
}

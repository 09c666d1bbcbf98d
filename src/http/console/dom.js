// Building the page. Text from the server (names chosen by whoever writes a tenant) only ever
// becomes text nodes and attribute values, never markup, so it cannot inject anything.

import { ApiError } from './api.js';

// An element: h('a', {href: '#/'}, 'text', child, ...). Attributes named on… are listeners;
// false, null and undefined attributes and children are left out; arrays of children are
// flattened.
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) {
      continue;
    }
    if (name.startsWith('on')) {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  element.append(...flatten(children));
  return element;
}

function flatten(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : document.createTextNode(String(child))));
}

let fields = 0;

// A labelled control; `label` is what it is found by, for people and for tests alike. With
// `options`, a choice among them; else a text field.
export function field(label, attributes = {}, hint = null, options = null) {
  fields += 1;
  const id = `field-${fields}`;
  const hintId = hint && `${id}-hint`;
  const input = options
    ? h('select', { id, name: id, 'aria-describedby': hintId, ...attributes }, options.map((o) => h('option', { value: o }, o)))
    : h('input', { id, name: id, type: 'text', 'aria-describedby': hintId, ...attributes });
  return {
    input,
    element: h(
      'div',
      { class: 'field' },
      h('label', { for: id }, label),
      input,
      hint && h('small', { id: hintId }, hint),
    ),
  };
}

// Says something to a screen reader without moving the focus.
export function announce(text) {
  const region = document.getElementById('announce');
  region.textContent = '';
  // A change after the clearing is what a screen reader reads out, even for the same text.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export function problem(error) {
  return h('p', { class: 'problem', role: 'alert' }, describe(error));
}

export function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error?.message ?? error);
}

// A form that runs `action(values)` when submitted, with its button disabled meanwhile and
// the server's refusal shown in it, next to the fields it is about. `values` maps each
// field's key to its trimmed value. The action's result, if a string, is announced. A form
// that makes something (`clears`) is emptied once it has, ready for the next.
export function form({ title, fields: specs, submit, action, className, clears = false }) {
  const controls = {};
  const rows = specs.map((spec) => {
    const { input, element } = field(spec.label, spec.attributes, spec.hint, spec.options);
    controls[spec.key] = input;
    return element;
  });
  const button = h('button', { type: 'submit' }, submit);
  const outcome = h('div', { class: 'outcome' });
  const element = h(
    'form',
    { class: className ?? 'inline', 'aria-label': title },
    rows,
    h('div', { class: 'actions' }, button),
    outcome,
  );
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = {};
    for (const [key, input] of Object.entries(controls)) {
      values[key] = input.value.trim();
    }
    button.disabled = true;
    outcome.replaceChildren();
    try {
      const said = await action(values);
      if (clears) {
        element.reset();
      }
      if (typeof said === 'string') {
        outcome.replaceChildren(h('p', { class: 'done' }, said));
        announce(said);
      }
    } catch (error) {
      outcome.replaceChildren(problem(error));
    } finally {
      button.disabled = false;
    }
  });
  return element;
}

// A table with a caption, a header row and a row per item; columns give their header and a
// function of the item that gives the cell's content.
export function table(caption, columns, items) {
  return h(
    'table',
    {},
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.header)))),
    h('tbody', {}, items.map((item) => h('tr', {}, columns.map((c) => h('td', {}, c.cell(item)))))),
  );
}

// A paged listing: loads the first page into `container`, and one more each time its button
// is pressed, until the server says there is no next page. `load(cursor)` resolves to
// {items, next_cursor}; `show(items)` makes a table or list of a page's items, whose rows
// join those shown already. `what` names the items, for the button's accessible name.
export function paged(container, load, show, empty, what) {
  const more = h('button', { type: 'button', class: 'secondary', 'aria-label': `Show more ${what}`, hidden: true }, 'Show more');
  const list = h('div', { class: 'pages' });
  const outcome = h('div');
  container.replaceChildren(list, outcome, more);
  let cursor = null;
  let count = 0;
  const next = async () => {
    more.disabled = true;
    outcome.replaceChildren();
    try {
      const page = await load(cursor);
      const first = count === 0;
      count += page.items.length;
      if (count === 0) {
        list.replaceChildren(h('p', { class: 'empty' }, empty));
      } else if (page.items.length > 0) {
        const shown = show(page.items);
        const rows = (element) => element.tBodies?.[0] ?? element;
        const kept = list.firstElementChild;
        if (kept && kept.tagName === shown.tagName) {
          const added = [...rows(shown).children];
          rows(kept).append(...added);
          if (!first && !page.next_cursor && added.length > 0) {
            // The button goes with the last page: the focus goes to what it brought.
            added[0].setAttribute('tabindex', '-1');
            added[0].focus();
          }
        } else {
          list.append(shown);
        }
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      outcome.replaceChildren(problem(error));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', next);
  return next();
}

// A link within the console: its route's parts, each encoded, so that any name is a path.
export function route(...parts) {
  return `#/${parts.map(encodeURIComponent).join('/')}`;
}

// `n` things: `count(1, 'group')` is "1 group", `count(2, 'group')` "2 groups".
export function count(n, thing) {
  return `${n} ${thing}${n === 1 ? '' : 's'}`;
}

export function when(instant) {
  return new Date(instant).toLocaleString();
}

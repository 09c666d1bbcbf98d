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

// A labelled control; `label` is what it is found by, for people and for tests alike. With
// `options`, a choice among them; else a text field.
export function field(label, attributes = {}, hint = null, options = null) {
  const id = unique('field');
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

// Runs `work` with `button` disabled, so that a second press cannot start it twice.
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// Moves the focus to an element that is not a control (a heading, a row), so that keyboard
// and screen-reader users go on from what changed rather than from the top of the page.
export function focusOn(element, options) {
  element.setAttribute('tabindex', '-1');
  element.focus(options);
}

let ids = 0;

function unique(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
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
    outcome.replaceChildren();
    await busy(button, async () => {
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
      }
    });
  });
  return element;
}

// A button that asks before it acts. Pressed, it shows `question` with a button that acts
// and one that keeps things as they are, the focus on keeping, so that a double press or a
// held key cannot act by accident; Escape keeps too. `act()` runs once confirmed; a refusal
// is shown under the question. Each of `ask`, `yes` and `keep` is [text, accessible name],
// the name optional.
export function confirmation({ ask, question, yes, keep, act }) {
  const button = ([text, name], className) =>
    h('button', { type: 'button', class: className, 'aria-label': name }, text);
  const asker = button(ask, 'secondary');
  const doer = button(yes, 'danger');
  const keeper = button(keep, 'secondary');
  const questionId = unique('question');
  const outcome = h('div');
  const asking = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-labelledby': questionId, hidden: true },
    h('p', { id: questionId }, question),
    doer,
    keeper,
    outcome,
  );
  const cancel = () => {
    asking.hidden = true;
    asker.hidden = false;
    outcome.replaceChildren();
    asker.focus();
  };
  asker.addEventListener('click', () => {
    asking.hidden = false;
    asker.hidden = true;
    keeper.focus();
  });
  keeper.addEventListener('click', cancel);
  asking.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      cancel();
    }
  });
  doer.addEventListener('click', () =>
    busy(doer, async () => {
      outcome.replaceChildren();
      try {
        await act();
      } catch (error) {
        outcome.replaceChildren(problem(error));
      }
    }),
  );
  return h('div', {}, asker, asking);
}

// A table with a caption for screen readers, a header row of `headers`, and `body`, its
// <tbody>.
export function frame(caption, headers, body, attributes = {}) {
  return h(
    'table',
    attributes,
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, headers.map((header) => h('th', { scope: 'col' }, header)))),
    body,
  );
}

// A table with a row per item; columns give their header and a function of the item that
// gives the cell's content.
export function table(caption, columns, items) {
  const rows = items.map((item) => h('tr', {}, columns.map((c) => h('td', {}, c.cell(item)))));
  return frame(caption, columns.map((c) => c.header), h('tbody', {}, rows));
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
  let listed = 0;
  const next = () =>
    busy(more, async () => {
      outcome.replaceChildren();
      try {
        const page = await load(cursor);
        listed += page.items.length;
        if (listed === 0) {
          list.replaceChildren(h('p', { class: 'empty' }, empty));
        } else if (page.items.length > 0) {
          const shown = show(page.items);
          const rows = (element) => element.tBodies?.[0] ?? element;
          const kept = list.firstElementChild;
          if (kept && kept.tagName === shown.tagName) {
            const added = [...rows(shown).children];
            rows(kept).append(...added);
            if (!page.next_cursor) {
              // The button goes with the last page: the focus goes to what it brought.
              focusOn(added[0]);
            }
          } else {
            list.append(shown);
          }
        }
        cursor = page.next_cursor;
        more.hidden = !cursor;
      } catch (error) {
        outcome.replaceChildren(problem(error));
      }
    });
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

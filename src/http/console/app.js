// The console: signing in, the header, and which view a location shows. Locations are
// fragments (#/t/acme/g/editors), so that every view has a link, the back button works, and
// the server serves one page.

import { credential, get, remember } from './api.js';
import { changesView } from './changes.js';
import { checkView } from './check.js';
import { describe, focusOn, form, h, problem, route } from './dom.js';
import { instanceView } from './instance.js';
import { keysView } from './keys.js';
import { groupView, tenantView } from './tenant.js';
import { tenantsView } from './tenants.js';
import { userView } from './user.js';

const main = document.getElementById('main');

// What the signed-in credential is and may do (GET /credential), or null before signing in.
let session = null;
// Ends what the view shown last still does (a live stream of changes) when another is shown.
let leaving = new AbortController();

async function signIn(token) {
  const answer = await get('/credential', undefined, { token });
  remember(token);
  session = answer;
  return answer;
}

// Shows `hash`, also when it is already the location (signing in on the start page).
function go(hash) {
  if (location.hash === hash) {
    show();
  } else {
    location.hash = hash;
  }
}

// Where signing in leads: the view the location named, if it was one (a link followed before
// signing in), else the start.
function destination() {
  return location.hash && location.hash !== '#/signin' ? location.hash : '#/';
}

function signOut() {
  remember(null);
  session = null;
  go('#/signin');
}

// `refused`: why the credential this tab held was refused; `needed`: why going on without one
// was.
function signInView(main, { refused, needed } = {}) {
  const explained = h(
    'p',
    {},
    'Sign in with an admin or check token, or an API key. It is kept in this browser tab only, ',
    'and sent to this server as a bearer token with each request.',
  );
  const withToken = form({
    title: 'Sign in with a token',
    className: 'stacked',
    fields: [
      {
        key: 'token',
        label: 'Token or API key',
        attributes: { type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' },
      },
    ],
    submit: 'Sign in',
    action: async ({ token }) => {
      await signIn(token);
      go(destination());
    },
  });
  const without = h('button', { type: 'button', class: 'secondary' }, 'Continue without a token');
  const outcome = h('div');
  without.addEventListener('click', async () => {
    try {
      await signIn('');
      go(destination());
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  main.replaceChildren(
    h('h1', {}, 'Sign in'),
    refused ? h('p', { class: 'problem', role: 'alert' }, `The credential this tab held is no longer in force: ${describe(refused)}`) : '',
    needed ? h('p', { class: 'problem', role: 'alert' }, `This server needs a token for that: ${describe(needed)}`) : '',
    explained,
    withToken,
    h('p', {}, 'On a server that needs no token for what you want to do:'),
    without,
    outcome,
  );
}

function header() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const { credential: held } = session;
  nav.replaceChildren(
    h('a', { href: '#/' }, 'Tenants'),
    h('a', { href: '#/instance' }, 'This instance'),
    session.may.manage_keys && h('a', { href: '#/keys' }, 'API keys'),
  );
  const name = held ? `${held.actor} · ${held.role} · ${held.tenant === '*' ? 'every tenant' : held.tenant}` : 'no credential';
  who.replaceChildren(
    h('span', { class: 'credential' }, name),
    h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out'),
  );
}

// The view for a location: its name and the names in its path.
function resolve(hash) {
  let parts;
  try {
    parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return [notFound];
  }
  const [first, tenant, third, group] = parts;
  if (first === 'signin') return [signInView];
  if (first === 'instance') return [instanceView];
  if (first === 'keys') return [keysView];
  if (first === 't' && tenant !== undefined) {
    if (third === undefined) return [tenantView, { tenant }];
    if (third === 'check') return [checkView, { tenant }];
    if (third === 'changes') return [changesView, { tenant }];
    if (third === 'g' && group !== undefined) return [groupView, { tenant, group }];
    if (third === 'u' && group !== undefined) return [userView, { tenant, user: group }];
  }
  if (parts.length === 0) return [home];
  return [notFound];
}

// Where a credential starts: the tenants if it may list them, its own tenant if it has one.
function home(main, context) {
  const held = context.session.credential;
  if (!context.session.may.list_tenants && held && held.tenant !== '*') {
    location.replace(route('t', held.tenant));
    return;
  }
  tenantsView(main, context);
}

function notFound(main) {
  main.replaceChildren(
    h('h1', {}, 'Not found'),
    h('p', {}, 'The console has no such page. ', h('a', { href: '#/' }, 'Start again')),
  );
}

// Asks the server again what the stored credential may do (a reload, a new tab's first view).
// A credential no longer in force is forgotten, and said so at sign-in; a server that cannot
// answer keeps it, for a retry.
async function restore(container) {
  try {
    await signIn(credential());
    return true;
  } catch (error) {
    if (error.status === 401) {
      remember(null);
      signInView(container, { refused: error });
      return false;
    }
    const retry = h('button', { type: 'button', onclick: show }, 'Try again');
    container.replaceChildren(h('h1', {}, 'The server did not answer'), problem(error), retry);
    return false;
  }
}

async function show() {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  // Each view draws into a container of its own: one still busy when another is shown
  // draws into a container no longer on the page, never into its successor.
  const container = h('div');
  main.replaceChildren(container);
  let [view, params] = resolve(location.hash);
  if (session === null && credential() !== null && !(await restore(container))) {
    view = null;
  } else if (session === null) {
    view = signInView;
  }
  if (signal.aborted) {
    return;
  }
  header();
  try {
    await view?.(container, { session, params: params ?? {}, signal });
  } catch (error) {
    if (signal.aborted || error.name === 'AbortError') {
      return;
    }
    container.replaceChildren(h('h1', {}, 'Something went wrong'), problem(error));
  }
  if (!signal.aborted) {
    arrive(container);
  }
}

// Keyboard and screen-reader users start at a new view's heading, not at the link that led
// there; the tab's title names the view.
function arrive(container) {
  const heading = container.querySelector('h1');
  if (heading) {
    focusOn(heading, { preventScroll: true });
    document.title = `${heading.textContent} · rbac-server console`;
  }
}

// A credential refused in the middle of a session (a key revoked meanwhile): back to signing
// in, saying why, at the same location.
window.addEventListener('credential-refused', (event) => {
  if (session === null) {
    return;
  }
  const held = credential();
  remember(null);
  session = null;
  leaving.abort();
  const container = h('div');
  main.replaceChildren(container);
  header();
  signInView(container, held ? { refused: event.detail } : { needed: event.detail });
  arrive(container);
});

window.addEventListener('hashchange', show);
show();

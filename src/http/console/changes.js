// A tenant's recent changes, newest first, and each new one as it happens, from /watch.

import { ApiError, watch } from './api.js';
import { describe, frame, h, route, when } from './dom.js';
import { read, tenantNav } from './tenant.js';

// How many of the latest revisions are shown when the view opens, and how many rows it keeps:
// a view left open on a busy tenant must not grow without end.
const RECENT = 50;
const KEPT = 200;

// What a change did, in words.
function summary(change, tenant) {
  const group = h('a', { href: route('t', tenant, 'g', change.group) }, change.group);
  switch (change.operation) {
    case 'create-group':
      return ['created group ', group];
    case 'delete-group':
      return ['deleted group ', change.group];
    case 'add-permission':
      return ['gave ', group, ' ', h('code', {}, change.action), ' on ', h('code', {}, change.resource)];
    case 'remove-permission':
      return ['took ', h('code', {}, change.action), ' on ', h('code', {}, change.resource), ' from ', group];
    case 'assign-user':
      return [
        'assigned ', change.user, ' to ', group,
        change.expires_at ? ` until ${when(change.expires_at)}` : '',
      ];
    case 'unassign-user':
      return ['removed ', change.user, ' from ', group];
    case 'nest-group':
      return ['nested ', group, ' in ', change.parent];
    case 'unnest-group':
      return ['took ', group, ' out of ', change.parent];
    default:
      return [change.operation, ' ', group];
  }
}

export async function changesView(main, { params: { tenant }, signal }) {
  const state = h('p', { class: 'meta', role: 'status' }, 'Connecting…');
  const rows = h('tbody');
  const notice = h('div');
  main.replaceChildren(
    h('h1', {}, `Changes in ${tenant}`),
    tenantNav(tenant, 'Changes'),
    state,
    notice,
    frame(`Changes of ${tenant}, newest first`, ['Revision', 'When', 'Change', 'By', 'Instance'], rows, {
      class: 'changes',
    }),
  );

  const start = await read(tenant, '/groups', { limit: 1 });
  // `after`: the last revision whose changes have all arrived, where a new stream resumes.
  follow(tenant, { after: Math.max(0, start.revision - RECENT) }, rows, state, notice, signal);
}

// Reads the stream until the view is left, starting again where it stopped whenever it
// ends: the server restarting, a proxy cutting it, the server telling a slow reader to
// resume (`reset`).
async function follow(tenant, position, rows, state, notice, signal) {
  let pause = 500;
  while (!signal.aborted) {
    // A revision cut off in the middle comes again whole.
    for (const row of [...rows.children]) {
      if (Number(row.dataset.revision) > position.after) {
        row.remove();
      }
    }
    try {
      for await (const { event, data } of watch(tenant, position.after, signal)) {
        if (event === 'open') {
          pause = 500;
          state.textContent = 'Live: new changes appear as they happen.';
        } else if (event === 'change') {
          rows.prepend(row(data, tenant));
          if (rows.children.length > KEPT) {
            rows.lastElementChild.remove();
          }
          if (data.ends_revision !== false) {
            position.after = data.revision;
          }
        } else if (event === 'reset') {
          position.after = data.after;
          break;
        } else if (event === 'expired') {
          forgotten(rows, notice, data.oldest_revision);
          position.after = data.oldest_revision - 1;
          break;
        }
      }
      state.textContent = 'Reconnecting…';
    } catch (error) {
      if (signal.aborted) {
        return;
      }
      if (error instanceof ApiError && error.code === 'changes_expired') {
        forgotten(rows, notice, error.body.error.oldest_revision);
        position.after = error.body.error.oldest_revision - 1;
        continue;
      }
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        state.textContent = `Stopped: ${describe(error)}`;
        return;
      }
      state.textContent = `Reconnecting… ${describe(error)}`;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}

// Retention deleted changes the view had yet to show: what it shows from here on does not
// follow on from the rows it has, so they go, and the gap is said.
function forgotten(rows, notice, oldest) {
  rows.replaceChildren();
  notice.replaceChildren(
    h('p', { class: 'problem' }, `Changes before revision ${oldest} are no longer kept; the list starts there.`),
  );
}

function row(change, tenant) {
  return h(
    'tr',
    { 'data-revision': change.revision },
    h('td', {}, change.revision),
    h('td', {}, h('time', { datetime: change.at }, when(change.at))),
    h('td', {}, summary(change, tenant)),
    h('td', {}, change.actor ?? 'open writes'),
    h('td', {}, change.server_id),
  );
}

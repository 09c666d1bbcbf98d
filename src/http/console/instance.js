// The instance that serves this console: whether it is alive and ready, what it reaches,
// what it holds in memory, and how far behind the store each tenant it holds is.

import { ApiError, get } from './api.js';
import { busy, count, describe, form, h, problem, route, table, when } from './dom.js';

function facts(caption, rows) {
  return h(
    'dl',
    { class: 'facts', 'aria-label': caption },
    rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

function bytes(size) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${size} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

// The revision the store has for a tenant, beside the one this instance holds: how many
// changes this instance has yet to apply.
async function lag(held) {
  const store = await get('/changes', { tenant: held.tenant, after: held.revision, limit: 1 });
  const behind = store.revision - held.revision;
  return behind <= 0 ? 'up to date' : `${behind} behind (store at ${store.revision})`;
}

export async function instanceView(main, { session }) {
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const body = h('div');
  main.replaceChildren(h('h1', {}, 'This instance'), refresh, body);
  const load = () =>
    busy(refresh, async () => {
      try {
        body.replaceChildren(...(await sections(session)));
      } catch (error) {
        // Figures left from before would look current: show the failure in their place.
        body.replaceChildren(problem(error));
      }
    });
  refresh.addEventListener('click', load);
  await load();
}

async function sections(session) {
  const [health, ready] = await Promise.all([
    get('/health'),
    get('/ready').then(
      () => 'ready',
      (error) => (error instanceof ApiError && error.status === 503 ? error.message : describe(error)),
    ),
  ]);
  const out = [
    h('h2', {}, 'Health'),
    facts('Health', [
      ['Server id', health.server_id],
      ['Ready', h('span', { class: ready === 'ready' ? 'allowed' : 'denied' }, ready)],
      ['Store', health.database],
      ['Bus (Redis)', health.redis],
      ['Server id shared with another process', health.server_id_shared ? 'yes: give each its own' : 'no'],
    ]),
  ];
  if (!session.may.view_instance) {
    out.push(h('p', {}, 'What this instance holds in memory takes a credential for every tenant.'));
    return out;
  }
  let stats;
  try {
    stats = await get('/cache-stats');
  } catch (error) {
    return [...out, problem(error)];
  }
  out.push(
    h('h2', {}, 'Cache'),
    facts('Cache', [
      ['Tenants held', `${stats.tenants_cached} of ${stats.tenants_known} known`],
      ['Memory', `${bytes(stats.cache_bytes)} of ${bytes(stats.cache_budget_bytes)}`],
      ['Reads from memory', `${stats.hits} (${stats.misses} loaded first)`],
      ['Loads, evictions', `${stats.loads}, ${stats.evictions}`],
      ['Refreshes', `${stats.incremental_refreshes} incremental, ${stats.full_reloads} whole`],
      ['API keys in force', stats.api_keys ?? 'not loaded yet'],
    ]),
    h('h2', {}, 'Bus'),
    facts('Bus', [
      ['Messages published', `${stats.messages_published} (${stats.publish_failures} failed)`],
      ['Messages received', `${stats.messages_received} (${stats.own_messages_ignored} own, ${stats.malformed_messages} malformed)`],
      ['Reconnects', stats.reconnects],
      ['Sweeps', `${stats.sweeps} (${stats.sweep_failures} failed)`],
    ]),
  );
  const largest = stats.largest_tenants;
  const lags = await Promise.all(largest.map((held) => lag(held).catch(describe)));
  out.push(
    h('h2', {}, 'Largest tenants held'),
    largest.length === 0
      ? h('p', { class: 'empty' }, 'No tenant is held in memory.')
      : table(
          'Largest tenants held, with their lag behind the store',
          [
            { header: 'Tenant', cell: ({ held }) => h('a', { href: route('t', held.tenant) }, held.tenant) },
            { header: 'Revision held', cell: ({ held, lag: behind }) => `${held.revision}, ${behind}` },
            {
              header: 'Memory',
              cell: ({ held }) => `${bytes(held.estimated_bytes)}; ${held.refreshed_by} ${when(held.refreshed_at)}`,
            },
          ],
          largest.map((held, index) => ({ held, lag: lags[index] })),
        ),
    h('h2', {}, 'One tenant'),
    oneTenant(),
  );
  return out;
}

function oneTenant() {
  return form({
    title: 'A tenant on this instance',
    fields: [{ key: 'tenant', label: 'Tenant', attributes: { required: true } }],
    submit: 'Show',
    action: async ({ tenant }) => {
      const { tenant: held } = await get('/cache-stats', { tenant });
      if (!held) {
        return `${tenant} is not held in memory here: a read loads it.`;
      }
      return `${tenant}: revision ${held.revision} held, ${await lag(held)}; ${count(held.groups, 'group')}, ${bytes(held.estimated_bytes)}.`;
    },
  });
}

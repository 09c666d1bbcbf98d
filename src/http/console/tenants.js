// The tenants: found by the start of their names, or opened by name.

import { get } from './api.js';
import { count, form, h, paged, route, table } from './dom.js';

export function tenantsView(main, { session }) {
  const open = form({
    title: 'Open a tenant',
    fields: [{ key: 'tenant', label: 'Tenant name', attributes: { required: true } }],
    submit: 'Open',
    action: async ({ tenant }) => {
      location.hash = route('t', tenant);
    },
  });
  main.replaceChildren(h('h1', {}, 'Tenants'), open);
  if (!session.may.list_tenants) {
    main.append(
      h('p', {}, 'Listing every tenant takes an admin credential for every tenant; open one by its name.'),
    );
    return undefined;
  }
  const results = h('div');
  const list = (prefix) =>
    paged(
      results,
      async (cursor) => {
        const page = await get('/tenants', { prefix, cursor, limit: 50 });
        return { items: page.tenants, next_cursor: page.next_cursor };
      },
      (tenants) =>
        table(
          'Tenants',
          [
            { header: 'Tenant', cell: (t) => h('a', { href: route('t', t.name) }, t.name) },
            { header: 'Revision', cell: (t) => t.revision },
            {
              header: 'Size',
              cell: (t) =>
                [count(t.group_count, 'group'), count(t.permission_count, 'permission'), count(t.assignment_count, 'membership')].join(', '),
            },
          ],
          tenants,
        ),
      prefix ? `No tenant's name starts with “${prefix}”.` : 'No tenant has been written yet.',
      'tenants',
    );
  const search = form({
    title: 'Find tenants',
    fields: [{ key: 'prefix', label: 'Name starts with', attributes: { type: 'search' } }],
    submit: 'Find',
    action: ({ prefix }) => list(prefix),
  });
  main.append(h('h2', {}, 'Every tenant'), search, results);
  return list('');
}

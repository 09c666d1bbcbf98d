// One user of a tenant: the groups they are in, as a member or through nesting, and every
// permission those groups give them now. For "why can't Alice open this?", beside the check.

import { busy, focusOn, frame, h, problem, route, when } from './dom.js';
import { read, tenantNav } from './tenant.js';

export async function userView(main, { params: { tenant, user } }) {
  const groups = h('tbody');
  const permissions = h('tbody');
  const outcome = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more');
  const revision = h('p', { class: 'meta' });
  main.replaceChildren(
    h('h1', {}, `User ${user}`),
    h('p', { class: 'meta' }, 'In tenant ', h('a', { href: route('t', tenant) }, tenant)),
    tenantNav(tenant, null),
    revision,
    h('h2', {}, 'Groups'),
    frame(`Groups of ${user}`, ['Group', 'Membership'], groups),
    h('h2', {}, 'Permissions'),
    frame(`Permissions of ${user}`, ['Resource', 'Action', 'From group'], permissions),
    outcome,
    more,
  );

  // One listing, the groups first and then the permissions, a page of either or both at a
  // time: two tables filled from one sequence, which `paged` does not do.
  let cursor = null;
  const next = () => busy(more, async () => {
    outcome.replaceChildren();
    try {
      const page = await read(tenant, '/user-permissions', { user, cursor });
      revision.textContent = `Revision ${page.revision}`;
      const inherited = new Set(page.inherited_groups);
      const ends = new Map(page.expiring.map((e) => [e.group, e.expires_at]));
      for (const group of page.groups) {
        const how = inherited.has(group)
          ? 'through nesting'
          : ends.has(group)
            ? `member until ${when(ends.get(group))}`
            : 'member';
        groups.append(h('tr', {}, h('td', {}, h('a', { href: route('t', tenant, 'g', group) }, group)), h('td', {}, how)));
      }
      for (const grant of page.permissions) {
        permissions.append(
          h(
            'tr',
            {},
            h('td', {}, h('code', {}, grant.resource)),
            h('td', {}, h('code', {}, grant.action)),
            h('td', {}, h('a', { href: route('t', tenant, 'g', grant.group) }, grant.group)),
          ),
        );
      }
      cursor = page.next_cursor;
      if (!cursor && document.activeElement === more) {
        // The button goes with the last page: the focus goes to the list it filled.
        focusOn(permissions.closest('table'));
      }
      more.hidden = !cursor;
      if (!cursor && groups.children.length === 0) {
        outcome.replaceChildren(h('p', { class: 'empty' }, `${user} is in no group of ${tenant}, and may do nothing there.`));
      }
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  more.addEventListener('click', next);
  await next();
}

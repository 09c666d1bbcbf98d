// A tenant's groups, and one group: its permissions, members and nestings, with the forms
// that change them. The forms call the write endpoints themselves, so a refusal reads the
// same here as from curl, and a change made here is recorded with this credential as actor.

import { get, post } from './api.js';
import { announce, busy, confirmation, focusOn, form, h, paged, problem, route, table, when } from './dom.js';

// The newest revision each tenant was seen at after a write from this tab. Reads ask for it
// (min_revision), so that behind a load balancer a page never shows a state before a change
// just made, whichever instance answers.
const seen = new Map();

function wrote(tenant, answer) {
  seen.set(tenant, Math.max(seen.get(tenant) ?? 0, answer.revision));
  return answer;
}

export function read(tenant, path, params) {
  return get(path, { tenant, min_revision: seen.get(tenant), ...params });
}

// A listing's pages, for `paged`: each read as `read` does, its items the answer's `field`.
export function pages(tenant, path, field, params) {
  return async (cursor) => {
    const answer = await read(tenant, path, { ...params, cursor });
    return { items: answer[field], next_cursor: answer.next_cursor, answer };
  };
}

// The links between a tenant's views, the current one marked.
export function tenantNav(tenant, current) {
  const link = (label, href) =>
    h('a', { href, 'aria-current': label === current ? 'page' : false }, label);
  return h(
    'nav',
    { class: 'tabs', 'aria-label': `Tenant ${tenant}` },
    link('Groups', route('t', tenant)),
    link('Check access', route('t', tenant, 'check')),
    link('Changes', route('t', tenant, 'changes')),
  );
}

function outcome(answer, changed, unchanged) {
  return answer.changed === false || answer.created === false
    ? `${unchanged} (revision ${answer.revision}).`
    : `${changed} at revision ${answer.revision}.`;
}

export function tenantView(main, { session, params: { tenant } }) {
  const groups = h('div');
  const load = pages(tenant, '/groups', 'groups', { limit: 50 });
  const list = () =>
    paged(
      groups,
      async (cursor) => {
        const page = await load(cursor);
        revision.textContent = `Revision ${page.answer.revision}`;
        return page;
      },
      (items) =>
        table(
          `Groups of ${tenant}`,
          [
            { header: 'Group', cell: (g) => h('a', { href: route('t', tenant, 'g', g.name) }, g.name) },
            { header: 'Permissions', cell: (g) => g.permission_count },
            { header: 'Members', cell: (g) => g.member_count },
          ],
          items,
        ),
      'This tenant has no groups.',
      'groups',
    );
  const revision = h('p', { class: 'meta' });
  main.replaceChildren(h('h1', {}, `Tenant ${tenant}`), tenantNav(tenant, 'Groups'), revision);
  if (session.may.write) {
    main.append(
      form({
        title: 'Create a group',
        fields: [{ key: 'group', label: 'New group', attributes: { required: true } }],
        submit: 'Create group',
        clears: true,
        action: async ({ group }) => {
          const answer = wrote(tenant, await post('/create-group', { tenant, group }));
          await list();
          return outcome(answer, `Group ${group} created`, `Group ${group} exists already`);
        },
      }),
    );
  }
  main.append(
    h('h2', {}, 'Groups'),
    groups,
    h('h2', {}, 'Users'),
    form({
      title: 'Look up a user',
      fields: [{ key: 'user', label: 'User name', attributes: { required: true } }],
      submit: 'Show user',
      action: async ({ user }) => {
        location.hash = route('t', tenant, 'u', user);
      },
    }),
  );
  return list();
}

// A button that makes one write and then shows the list it changed again. The list is
// drawn anew without the button, so the focus goes to the heading of its section; a refusal
// is shown beside the button, which stays for another try.
function writeButton(label, name, write, after) {
  const button = h('button', { type: 'button', class: 'secondary small', 'aria-label': name }, label);
  button.addEventListener('click', () =>
    busy(button, async () => {
      const heading = button.closest('section')?.querySelector('h2');
      button.nextElementSibling?.remove();
      try {
        await write();
        announce(`${name}: done.`);
        await after();
        focusOn(heading);
      } catch (error) {
        button.after(problem(error));
      }
    }),
  );
  return button;
}

export async function groupView(main, { session, params: { tenant, group } }) {
  const may = session.may.write;
  main.replaceChildren(
    h('h1', {}, `Group ${group}`),
    h('p', { class: 'meta' }, 'In tenant ', h('a', { href: route('t', tenant) }, tenant)),
    tenantNav(tenant, null),
  );
  const change = async (path, body) => wrote(tenant, await post(path, { tenant, group, ...body }));

  // Permissions.
  const permissions = h('div');
  const listPermissions = () =>
    paged(
      permissions,
      pages(tenant, '/group-permissions', 'permissions', { group }),
      (items) =>
        table(`Permissions of ${group}`, [
          { header: 'Resource', cell: (p) => h('code', {}, p.resource) },
          { header: 'Action', cell: (p) => h('code', {}, p.action) },
          may && {
            header: 'Change',
            cell: (p) =>
              writeButton(
                'Remove',
                `Remove permission ${p.action} on ${p.resource}`,
                () => change('/remove-permission', p),
                listPermissions,
              ),
          },
        ].filter(Boolean), items),
      'No permissions.',
      'permissions',
    );
  const permissionsSection = h('section', { 'aria-labelledby': 'permissions-heading' },
    h('h2', { id: 'permissions-heading' }, 'Permissions'), permissions);
  if (may) {
    permissionsSection.append(
      form({
        title: 'Add a permission',
        clears: true,
        fields: [
          { key: 'resource', label: 'Resource', attributes: { required: true }, hint: 'A final * matches every resource starting with what is before it.' },
          { key: 'action', label: 'Action', attributes: { required: true }, hint: '* matches every action.' },
        ],
        submit: 'Add permission',
        action: async ({ resource, action }) => {
          const answer = await change('/add-permission', { resource, action });
          await listPermissions();
          return outcome(answer, 'Permission added', 'The group has this permission already');
        },
      }),
    );
  }

  // Members.
  const members = h('div');
  const listMembers = () =>
    paged(
      members,
      async (cursor) => {
        const page = await pages(tenant, '/group-members', 'members', { group })(cursor);
        const ends = new Map(page.answer.expiring.map((e) => [e.user, e]));
        return { ...page, items: page.items.map((user) => ({ user, end: ends.get(user) })) };
      },
      (items) =>
        table(`Members of ${group}`, [
          { header: 'User', cell: (m) => h('a', { href: route('t', tenant, 'u', m.user) }, m.user) },
          {
            header: 'Membership',
            cell: (m) =>
              !m.end ? 'for good' : m.end.expired ? h('span', { class: 'ended' }, `ended ${when(m.end.expires_at)}`) : `until ${when(m.end.expires_at)}`,
          },
          may && {
            header: 'Change',
            cell: (m) =>
              writeButton('Remove', `Remove ${m.user} from ${group}`, () => change('/unassign-user', { user: m.user }), listMembers),
          },
        ].filter(Boolean), items),
      'No members.',
      'members',
    );
  const membersSection = h('section', { 'aria-labelledby': 'members-heading' },
    h('h2', { id: 'members-heading' }, 'Members'), members);
  if (may) {
    membersSection.append(
      form({
        title: 'Assign a user',
        clears: true,
        fields: [
          { key: 'user', label: 'User', attributes: { required: true } },
          {
            key: 'ends',
            label: 'Membership ends (optional)',
            // The API takes years up to 9999, as RFC 3339 writes them.
            attributes: { type: 'datetime-local', max: '9999-12-31T23:59' },
            hint: 'In this browser’s time zone. Empty: the membership does not end.',
          },
        ],
        submit: 'Assign user',
        action: async ({ user, ends }) => {
          const body = { user };
          if (ends) {
            body.expires_at = new Date(ends).toISOString();
          }
          const answer = await change('/assign-user', body);
          await listMembers();
          return outcome(answer, `${user} assigned`, `${user} is a member already, with this end`);
        },
      }),
    );
  }

  // Nesting: the groups this one is in, whose permissions its members have, and the groups in it.
  const parents = h('div');
  const children = h('div');
  const names = (list, linkOnly, caption) =>
    table(caption, [
      { header: 'Group', cell: (name) => h('a', { href: route('t', tenant, 'g', name) }, name) },
      !linkOnly && may && {
        header: 'Change',
        cell: (name) =>
          writeButton('Take out', `Take out ${group} from ${name}`, () => change('/unnest-group', { parent: name }), listParents),
      },
    ].filter(Boolean), list);
  const listParents = () =>
    paged(
      parents,
      pages(tenant, '/group-parents', 'parents', { group }),
      (items) => names(items, false, `Groups ${group} is nested in`),
      `${group} is not nested in any group.`,
      'parent groups',
    );
  const listChildren = () =>
    paged(
      children,
      pages(tenant, '/group-children', 'children', { group }),
      (items) => names(items, true, `Groups nested in ${group}`),
      `No group is nested in ${group}.`,
      'nested groups',
    );
  const nestingSection = h(
    'section',
    { 'aria-labelledby': 'nesting-heading' },
    h('h2', { id: 'nesting-heading' }, 'Nesting'),
    h('p', {}, `The members of ${group} have the permissions of every group it is nested in.`),
    h('h3', {}, 'Nested in'),
    parents,
  );
  if (may) {
    nestingSection.append(
      form({
        title: 'Nest in a group',
        clears: true,
        fields: [{ key: 'parent', label: 'Parent group', attributes: { required: true } }],
        submit: 'Nest in group',
        action: async ({ parent }) => {
          const answer = await change('/nest-group', { parent });
          await listParents();
          return outcome(answer, `${group} nested in ${parent}`, `${group} is nested in ${parent} already`);
        },
      }),
    );
  }
  nestingSection.append(h('h3', {}, 'Groups nested in this one'), children);

  main.append(permissionsSection, membersSection, nestingSection);
  if (may) {
    main.append(deleteSection(tenant, group, change));
  }
  // A group that does not exist is one error, not four.
  try {
    await read(tenant, '/group-permissions', { group, limit: 1 });
  } catch (error) {
    main.replaceChildren(...[...main.children].slice(0, 3), problem(error));
    return;
  }
  await Promise.all([listPermissions(), listMembers(), listParents(), listChildren()]);
}

function deleteSection(tenant, group, change) {
  return h(
    'section',
    { 'aria-labelledby': 'delete-heading' },
    h('h2', { id: 'delete-heading' }, 'Delete'),
    confirmation({
      ask: ['Delete group…'],
      question: `Delete ${group} with its permissions and memberships? Groups nested in it lose what came through it.`,
      yes: [`Delete ${group}`],
      keep: ['Keep it'],
      act: async () => {
        await change('/delete-group', {});
        announce(`Group ${group} deleted.`);
        location.hash = route('t', tenant);
      },
    }),
  );
}

// Trying the check: may this user do this action on this resource, and why; and who may.

import { form, h, paged, route } from './dom.js';
import { pages, read, tenantNav } from './tenant.js';

// Why a check came out as it did: each matching permission, and the chain of nestings it
// came through.
function because(answer, user) {
  if (!answer.allowed) {
    return h('p', {}, `No group ${user} is a member of holds a permission that matches.`);
  }
  return h(
    'ul',
    { class: 'because' },
    answer.because.map((grant) =>
      h(
        'li',
        {},
        'Group ',
        h('strong', {}, grant.group),
        ' grants ',
        h('code', {}, grant.action),
        ' on ',
        h('code', {}, grant.resource),
        grant.through ? [' through ', grant.through.join(' → ')] : ' directly',
      ),
    ),
  );
}

export function checkView(main, { params: { tenant } }) {
  const verdict = h('div', { class: 'verdict', 'aria-live': 'polite' });
  const check = form({
    title: 'Check access',
    className: 'stacked',
    fields: [
      { key: 'user', label: 'User', attributes: { required: true } },
      { key: 'resource', label: 'Resource', attributes: { required: true } },
      { key: 'action', label: 'Action', attributes: { required: true } },
    ],
    submit: 'Check',
    action: async ({ user, resource, action }) => {
      verdict.replaceChildren();
      const answer = await read(tenant, '/check-access', { user, resource, action, explain: true });
      const word = answer.allowed ? 'Allowed' : 'Denied';
      verdict.replaceChildren(
        h(
          'p',
          { class: answer.allowed ? 'allowed' : 'denied' },
          h('strong', {}, word),
          ` · ${user} may ${answer.allowed ? '' : 'not '}${action} ${resource} · revision ${answer.revision}`,
        ),
        because(answer, user),
        h('p', {}, h('a', { href: route('t', tenant, 'u', user) }, `Everything ${user} may do in ${tenant}`)),
      );
    },
  });

  const users = h('div');
  const whoCan = form({
    title: 'Who can',
    className: 'stacked',
    fields: [
      { key: 'resource', label: 'Resource', attributes: { required: true } },
      { key: 'action', label: 'Action', attributes: { required: true } },
    ],
    submit: 'List users',
    action: ({ resource, action }) =>
      paged(
        users,
        pages(tenant, '/who-can', 'users', { resource, action, limit: 100 }),
        (items) => h('ul', { class: 'users' }, items.map((user) => h('li', {}, user))),
        `No user may ${action} ${resource}.`,
        'users',
      ),
  });

  main.replaceChildren(
    h('h1', {}, `Check access in ${tenant}`),
    tenantNav(tenant, 'Check access'),
    h('section', { id: 'check', class: 'side-by-side', 'aria-labelledby': 'check-heading' },
      h('h2', { id: 'check-heading' }, 'May this user do this?'), check, verdict),
    h('section', { id: 'who-can', class: 'side-by-side', 'aria-labelledby': 'who-can-heading' },
      h('h2', { id: 'who-can-heading' }, 'Who may do this?'), whoCan, users),
  );
}

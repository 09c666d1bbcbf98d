// API keys: issue one (shown once), see each key's tenant, role and last use, revoke one.
// Only for ADMIN_TOKEN, which alone manages keys, so that a leaked key cannot make more.

import { get, post } from './api.js';
import { announce, confirmation, focusOn, form, h, paged, table, when } from './dom.js';

export function keysView(main) {
  const keys = h('div');
  const list = () =>
    paged(
      keys,
      async (cursor) => {
        const page = await get('/api-keys', { cursor });
        return { items: page.keys, next_cursor: page.next_cursor };
      },
      (items) =>
        table('API keys', [
          {
            header: 'Key',
            cell: (k) => [
              k.name ? h('strong', {}, k.name) : '',
              h('div', {}, h('code', {}, k.id)),
              h('div', {}, `${k.role} · ${k.tenant === '*' ? 'every tenant' : k.tenant}`),
            ],
          },
          {
            header: 'Use',
            cell: (k) => [
              h('div', {}, `created ${when(k.created_at)} by ${k.created_by}`),
              h('div', {}, k.last_used_at ? `last used ${when(k.last_used_at)}` : 'not used yet'),
            ],
          },
          {
            header: 'State',
            cell: (k) => (k.revoked_at ? h('span', { class: 'ended' }, `revoked ${when(k.revoked_at)}`) : revokeButton(k, list)),
          },
        ], items),
      'No API keys yet.',
      'keys',
    );
  // Not a live region: a screen reader would read the key out. The form announces the issue.
  const issued = h('div');
  const issue = form({
    title: 'Issue a key',
    className: 'stacked',
    clears: true,
    fields: [
      { key: 'name', label: 'Name (optional)', hint: 'Who or what uses the key, for people reading this list.' },
      { key: 'tenant', label: 'Tenant', attributes: { required: true }, hint: '* for every tenant, and the instance-wide views.' },
      { key: 'role', label: 'Role', options: ['check', 'admin'], hint: 'check: reads only; admin: writes and reads.' },
    ],
    submit: 'Issue key',
    action: async ({ name, tenant, role }) => {
      issued.replaceChildren();
      const body = { tenant, role };
      if (name) {
        body.name = name;
      }
      const key = await post('/create-api-key', body);
      const shown = h('input', { id: 'issued-key', type: 'text', readonly: true, value: key.key, spellcheck: 'false' });
      issued.replaceChildren(
        h(
          'div',
          { class: 'confirm' },
          h('label', { for: 'issued-key' }, `The new key ${key.id}`),
          shown,
          h('p', {}, 'Copy it now: the server keeps only its hash, and it is not shown again.'),
        ),
      );
      shown.select();
      await list();
      return `Key ${key.id} issued for ${key.tenant === '*' ? 'every tenant' : key.tenant}, role ${key.role}.`;
    },
  });
  main.replaceChildren(
    h('h1', {}, 'API keys'),
    h('section', { 'aria-labelledby': 'issue-heading' }, h('h2', { id: 'issue-heading' }, 'Issue a key'), issue, issued),
    h('section', { 'aria-labelledby': 'keys-heading' }, h('h2', { id: 'keys-heading' }, 'Keys'), keys),
  );
  return list();
}

// Revoking asks first, as deleting a group does. Revoked, a key is refused at once on every
// instance.
function revokeButton(key, after) {
  return confirmation({
    ask: ['Revoke', `Revoke key ${key.id}`],
    question: `Revoke ${key.id}? Whoever uses it is refused from then on.`,
    yes: ['Revoke now', `Revoke now: key ${key.id}`],
    keep: ['Keep', `Keep key ${key.id}`],
    act: async () => {
      await post('/revoke-api-key', { id: key.id });
      announce(`Key ${key.id} revoked.`);
      await after();
      focusOn(document.getElementById('keys-heading'));
    },
  });
}

// The approvals page: lists pending confirmations (GET /api/confirmations) and decides them
// (POST /api/approvals/{turnInstanceId}/{toolCallId}) with the management key.
//
// Everything shown comes from a model and is treated as hostile: the page builds its DOM with
// createElement/textContent only and never assigns HTML (no innerHTML, no insertAdjacentHTML);
// the Content-Security-Policy the host sends forbids inline script as a second line of defence.
'use strict';

(() => {
  const KEY_STORAGE = 'orchestrator.approvals.key';
  const NAME_STORAGE = 'orchestrator.approvals.decidedBy';
  const POLL_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const cards = new Map();      // card key -> { item, root }
  const plans = new Map();      // turnInstanceId -> plan promise
  let pollTimer = null;
  let polling = false;

  // ---- DOM helpers: strings always become text nodes --------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setStatus(text) { $('status').textContent = text; }

  // ---- The key: from the URL fragment (never the query string) or the form, kept in sessionStorage --
  function takeKeyFromFragment() {
    if (!location.hash || location.hash.length < 2) return;
    const params = new URLSearchParams(location.hash.slice(1));
    const key = params.get('key');
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    const name = params.get('by');
    if (name) sessionStorage.setItem(NAME_STORAGE, name);
    // Drop the fragment so the key does not stay in the address bar or the tab's history.
    history.replaceState(null, '', location.pathname);
  }

  const key = () => sessionStorage.getItem(KEY_STORAGE);
  const decidedBy = () => sessionStorage.getItem(NAME_STORAGE) || 'approvals page';

  function askForKey(message) {
    stopPolling();
    $('key-panel').hidden = false;
    $('toolbar').hidden = true;
    $('key-error').textContent = message || '';
    $('decided-by-input').value = sessionStorage.getItem(NAME_STORAGE) || '';
    setStatus('Enter the management key to see pending confirmations.');
    $('key-input').focus();
  }

  function keyAccepted() {
    $('key-panel').hidden = true;
    $('toolbar').hidden = false;
    $('decided-by').textContent = decidedBy();
  }

  // ---- API --------------------------------------------------------------------------------------
  async function api(method, url, body) {
    const headers = { 'x-management-key': key() || '', 'accept': 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    let json = null;
    const text = await response.text();
    if (text) {
      try { json = JSON.parse(text); } catch { json = { detail: text }; }
    }
    return { status: response.status, ok: response.ok, json };
  }

  // ---- Polling ----------------------------------------------------------------------------------
  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function schedulePoll(delay) {
    stopPolling();
    pollTimer = setTimeout(refresh, delay);
  }

  async function refresh() {
    if (!key()) { askForKey(); return; }
    if (polling) { schedulePoll(POLL_MS); return; }
    polling = true;
    try {
      const result = await api('GET', '/api/confirmations');
      if (result.status === 401 || result.status === 403) {
        sessionStorage.removeItem(KEY_STORAGE);
        clearCards();
        askForKey(result.status === 403 ? 'That key was refused.' : 'The management key is required.');
        return;
      }
      if (!result.ok || !Array.isArray(result.json)) {
        setStatus(`Could not load confirmations (HTTP ${result.status}); retrying.`);
      } else {
        keyAccepted();
        render(result.json);
        const n = result.json.length;
        setStatus(`${n} pending · refreshed ${new Date().toLocaleTimeString()}`);
      }
      schedulePoll(POLL_MS);
    } catch (error) {
      setStatus(`Could not reach the host (${error.message}); retrying.`);
      schedulePoll(POLL_MS);
    } finally {
      polling = false;
    }
  }

  // ---- Rendering --------------------------------------------------------------------------------
  const cardKey = (item) => `${item.turnInstanceId}\n${item.toolCallId}\n${item.argumentsHash}`;

  function clearCards() {
    cards.clear();
    $('list').replaceChildren();
    $('empty').hidden = true;
  }

  function render(items) {
    const list = $('list');
    for (const [k, card] of cards) {
      if (!items.some((item) => cardKey(item) === k)) {
        card.root.remove();
        cards.delete(k);
      }
    }
    items.forEach((item, index) => {
      const k = cardKey(item);
      let card = cards.get(k);
      if (!card) {
        card = { item, root: buildCard(item) };
        cards.set(k, card);
      }
      // Move a card only when it is out of place: moving a node would take the focus from an open editor.
      if (list.children[index] !== card.root) list.insertBefore(card.root, list.children[index] || null);
    });
    $('empty').hidden = items.length !== 0;
  }

  function pretty(json) {
    try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json; }
  }

  function buildCard(item) {
    const outcome = el('p', { class: 'outcome', role: 'alert' });
    const errors = el('ul', { class: 'errors' });
    const planBox = el('div', { class: 'plan' }, el('h3', { text: 'Plan' }), el('p', { class: 'meta', text: 'Loading the plan…' }));
    const redacted = item.arguments.includes('[REDACTED');

    const textarea = el('textarea', { class: 'edited-arguments', 'aria-label': 'Edited arguments (JSON)', spellcheck: 'false' });
    textarea.value = pretty(item.arguments);
    const editor = el('div', { class: 'editor' },
      el('label', { text: 'Edit the arguments (JSON); the server validates them again before anything runs.' }),
      textarea,
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'approve', 'data-action': 'approve-edited', onclick: () => approveEdited() }, 'Approve with these arguments'),
        el('button', { type: 'button', 'data-action': 'cancel-edit', onclick: () => { editor.hidden = true; } }, 'Cancel')));
    editor.hidden = true;

    const buttons = [
      el('button', { type: 'button', class: 'approve', 'data-action': 'approve', onclick: () => decide({ decision: 'approve' }) }, 'Approve'),
      el('button', { type: 'button', class: 'reject', 'data-action': 'reject', onclick: () => decide({ decision: 'reject' }) }, 'Reject'),
      el('button', {
        type: 'button',
        'data-action': 'edit',
        disabled: redacted,
        title: redacted ? 'Sensitive values are redacted here, so the arguments cannot be edited on this page.' : null,
        onclick: () => { editor.hidden = !editor.hidden; if (!editor.hidden) textarea.focus(); },
      }, 'Edit…'),
    ];

    const root = el('article', {
      class: 'card',
      'data-turn-instance-id': item.turnInstanceId,
      'data-tool-call-id': item.toolCallId,
    },
      el('h2', {}, el('span', { class: 'tool', text: item.tool }), ' ', el('code', { class: 'tool-call-id', text: item.toolCallId })),
      el('p', { class: 'summary', text: item.summary || '(no summary)' }),
      el('p', { class: 'meta' },
        el('span', {}, 'conversation ', el('code', { class: 'conversation-id', text: item.conversationId })),
        el('span', {}, 'turn ', el('code', { text: item.turnInstanceId })),
        el('span', { class: 'expires', text: `expires ${new Date(item.expiresAt).toLocaleString()}` })),
      el('h3', { text: 'Exact arguments' }),
      el('pre', { class: 'arguments', text: item.arguments }),
      el('p', { class: 'meta' }, 'argument hash ', el('code', { class: 'hash', text: item.argumentsHash })),
      redacted ? el('p', { class: 'meta', text: 'Values marked [REDACTED] are sensitive and not shown.' }) : null,
      el('p', { class: 'position meta', text: `Stage ${item.stage + 1} of ${item.stageCount} · call ${item.position + 1} of model reply ${item.modelCallIndex + 1}` }),
      el('p', { class: 'waits-for meta', text: item.waitsFor.length ? `Runs after: ${item.waitsFor.join(', ')}` : 'Waits for no other call.' }),
      el('p', { class: 'dependents' },
        item.dependents.length
          ? `Rejecting it also skips: ${item.dependents.map((d) => `${d.tool} (${d.toolCallId})`).join(', ')}`
          : 'Nothing else depends on it.'),
      planBox,
      el('div', { class: 'actions' }, buttons),
      editor,
      outcome,
      errors);

    loadPlan(item).then((plan) => renderPlan(planBox, plan, item)).catch(() => renderPlan(planBox, null, item));

    function busy(on) {
      root.classList.toggle('deciding', on);
      root.querySelectorAll('button').forEach((b) => { b.disabled = on || (b.dataset.action === 'edit' && redacted); });
    }

    function showProblem(result) {
      const p = result.json || {};
      outcome.className = 'outcome error';
      outcome.textContent = `${p.title || 'Refused'} (HTTP ${result.status}): ${p.detail || ''}`.trim();
      errors.replaceChildren(...(Array.isArray(p.errors) ? p.errors : []).map((e) =>
        el('li', {}, el('code', { text: e.argument || '' }), ': ', e.problem || e.message || e.code || '')));
    }

    async function decide(extra) {
      outcome.textContent = '';
      errors.replaceChildren();
      busy(true);
      try {
        const body = { argumentsHash: item.argumentsHash, decidedBy: decidedBy(), ...extra };
        const result = await api('POST', item.decidePostUri, body);
        if (result.status === 202) {
          outcome.className = 'outcome ok';
          outcome.textContent = extra.decision === 'approve'
            ? (extra.editedArguments ? 'Approved with edits; the turn continues.' : 'Approved; the turn continues.')
            : 'Rejected; the turn continues without it.';
          root.querySelectorAll('button').forEach((b) => { b.disabled = true; });
          schedulePoll(0);
          return;
        }
        if (result.status === 401 || result.status === 403) {
          sessionStorage.removeItem(KEY_STORAGE);
          askForKey('The key was refused.');
        }
        showProblem(result);
        busy(false);
        if (result.status === 409 || result.status === 410 || result.status === 404) schedulePoll(0);
      } catch (error) {
        outcome.className = 'outcome error';
        outcome.textContent = `Could not send the decision: ${error.message}`;
        busy(false);
      }
    }

    function approveEdited() {
      let edited;
      try {
        edited = JSON.parse(textarea.value);
      } catch (error) {
        outcome.className = 'outcome error';
        outcome.textContent = `The edited arguments are not valid JSON: ${error.message}`;
        errors.replaceChildren();
        return;
      }
      if (edited === null || typeof edited !== 'object' || Array.isArray(edited)) {
        outcome.className = 'outcome error';
        outcome.textContent = 'The edited arguments must be a JSON object.';
        errors.replaceChildren();
        return;
      }
      decide({ decision: 'approve', editedArguments: edited });
    }

    return root;
  }

  function loadPlan(item) {
    if (!plans.has(item.turnInstanceId)) {
      const promise = api('GET', `/api/conversations/${encodeURIComponent(item.conversationId)}`).then((r) => {
        const turn = r.ok && r.json ? r.json.currentTurn : null;
        return turn && turn.instanceId === item.turnInstanceId ? turn.plan : null;
      });
      plans.set(item.turnInstanceId, promise);
      promise.catch(() => plans.delete(item.turnInstanceId));
    }
    return plans.get(item.turnInstanceId);
  }

  function renderPlan(box, plan, item) {
    const heading = el('h3', { text: 'Plan' });
    if (!plan || !Array.isArray(plan.stages)) {
      box.replaceChildren(heading, el('p', { class: 'meta', text: 'The plan is not available.' }));
      return;
    }
    const byId = new Map((plan.calls || []).map((c) => [c.toolCallId, c]));
    const stages = el('ol', {}, plan.stages.map((ids) =>
      el('li', { class: ids.includes(item.toolCallId) ? 'this' : null },
        ids.map((id, i) => {
          const call = byId.get(id);
          const label = `${call ? call.toolName : '?'} (${id})${id === item.toolCallId ? ' ← this call' : ''}`;
          return i === 0 ? label : `, ${label}`;
        }))));
    box.replaceChildren(heading, el('p', { class: 'meta', text: 'Stages run in order; calls in one stage may run in parallel.' }), stages);
  }

  // ---- Start ------------------------------------------------------------------------------------
  document.addEventListener('DOMContentLoaded', () => {
    takeKeyFromFragment();
    $('key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('key-input').value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_STORAGE, value);
      const name = $('decided-by-input').value.trim();
      if (name) sessionStorage.setItem(NAME_STORAGE, name); else sessionStorage.removeItem(NAME_STORAGE);
      $('key-input').value = '';
      $('key-error').textContent = '';
      setStatus('Loading…');
      refresh();
    });
    $('forget-key').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      clearCards();
      plans.clear();
      askForKey('Key forgotten.');
    });
    window.addEventListener('hashchange', () => { takeKeyFromFragment(); refresh(); });
    refresh();
  });
})();

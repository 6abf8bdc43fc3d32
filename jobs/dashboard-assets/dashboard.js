// The dashboard's client script (plain JS, served as is by jobs/dashboard.ts): live counts
// from the /events stream, and the retry/remove forms done with fetch so the page stays put.
// Every page works without it; this only saves reloads.
(function () {
  'use strict';
  var base = document.body.getAttribute('data-base') || '';
  var live = document.querySelector('[data-live]');
  var flash = document.querySelector('[data-flash]');
  var STATS = ['processed', 'failed', 'pending', 'delayed', 'running', 'failedKept', 'workers'];

  function setLive(state) {
    if (live) live.setAttribute('data-live', state);
  }

  function show(message, isError) {
    if (!flash) return;
    flash.textContent = message;
    flash.hidden = false;
    flash.className = isError ? 'flash flash-error' : 'flash';
  }

  function apply(stats) {
    STATS.forEach(function (name) {
      if (typeof stats[name] !== 'number') return;
      document.querySelectorAll('[data-stat="' + name + '"]').forEach(function (el) {
        el.textContent = String(stats[name]);
      });
    });
    var queues = stats.queues || {};
    document.querySelectorAll('[data-queue]').forEach(function (el) {
      var n = queues[el.getAttribute('data-queue')];
      // A queue the store no longer counts has no pending job.
      el.textContent = String(typeof n === 'number' ? n : 0);
    });
  }

  if (window.EventSource) {
    var source = new EventSource(base + '/events');
    source.addEventListener('open', function () {
      setLive('on');
    });
    source.addEventListener('stats', function (e) {
      setLive('on');
      try {
        apply(JSON.parse(e.data));
      } catch (err) {
        /* a torn message: the next one replaces it */
      }
    });
    source.addEventListener('store-error', function () {
      setLive('error');
    });
    source.addEventListener('error', function () {
      setLive('off');
    });
    window.addEventListener('pagehide', function () {
      source.close();
    });
  }

  function rowsLeft() {
    var table = document.querySelector('table.failed');
    if (table && !table.querySelector('tr[data-failure-id]')) show('No failed job left on this page.', false);
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    var button = e.submitter || (form && form.querySelector('button[data-action]'));
    if (!button || !button.hasAttribute('data-action') || !window.fetch) return;
    e.preventDefault();
    var action = button.getAttribute('data-action');
    button.disabled = true;
    fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(new FormData(form)).toString(),
    })
      .then(function (res) {
        return res.json().then(
          function (body) {
            return { res: res, body: body };
          },
          function () {
            return { res: res, body: {} };
          },
        );
      })
      .then(function (r) {
        if (!r.res.ok) {
          button.disabled = false;
          show((r.body && r.body.error) || 'The ' + action + ' failed with status ' + r.res.status + '.', true);
          return;
        }
        if (action === 'retry-all') {
          document.querySelectorAll('tr[data-failure-id]').forEach(function (tr) {
            tr.remove();
          });
          form.remove();
          show('Retried ' + r.body.retried + ' failed jobs.', false);
        } else {
          var row = button.closest('tr[data-failure-id]');
          if (row) row.remove();
          show(action === 'retry' ? 'Retried: the job is back in its queue.' : 'Removed.', false);
        }
        rowsLeft();
      })
      .catch(function (err) {
        button.disabled = false;
        show('The ' + action + ' did not reach the dashboard: ' + err.message, true);
      });
  });
})();

// The GraphQL console at GET /graphql: GraphiQL (served by this server, see
// api/assets/graphiql/README.md) with the workspace's API key on every request.
//
// The key is kept in this browser's localStorage. It is entered in the bar above the editor, or
// given once in the address's fragment, `/graphql#key=wf_…` (a fragment never reaches the
// server or its logs; the page removes it from the address at once). `#query=…` (URL-encoded)
// opens the editor on that document. Not `?query=`: a GET with a query parameter is a GraphQL
// request (GraphQL over HTTP), not the console.
//
// Queries and mutations send `Authorization: Bearer KEY`. Subscriptions go over /graphql/ws
// (graphql-transport-ws), where a browser cannot set headers: the key travels in
// connection_init's payload as `{"authorization": "Bearer KEY"}`, which is what ws.rs reads.
(function () {
  'use strict';

  var STORAGE_KEY = 'waflow:apiKey';
  var form = document.getElementById('waflow-key');
  var input = document.getElementById('waflow-key-input');
  var forget = document.getElementById('waflow-key-forget');
  var status = document.getElementById('waflow-key-status');
  var container = document.getElementById('graphiql');

  function storedKey() {
    try {
      return window.localStorage.getItem(STORAGE_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function storeKey(key) {
    try {
      if (key) {
        window.localStorage.setItem(STORAGE_KEY, key);
      } else {
        window.localStorage.removeItem(STORAGE_KEY);
      }
    } catch (e) {
      // Storage refused (a private window, say): the key lasts until the page is left.
    }
  }

  var apiKey = storedKey();
  // A document to open at the next render.
  var pendingQuery = null;

  // `#key=…&query=…`: store the key, open the document, and take both out of the address bar
  // and history (a reload then keeps what was edited since). True when there was either.
  function takeFragment() {
    var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    if (!fragment.has('key') && !fragment.has('query')) {
      return false;
    }
    if (fragment.has('key')) {
      apiKey = (fragment.get('key') || '').trim();
      storeKey(apiKey);
    }
    if (fragment.has('query')) {
      pendingQuery = fragment.get('query');
    }
    fragment.delete('key');
    fragment.delete('query');
    var rest = fragment.toString();
    window.history.replaceState(
      null,
      '',
      window.location.pathname + window.location.search + (rest ? '#' + rest : '')
    );
    return true;
  }
  takeFragment();

  var wsUrl =
    (window.location.protocol === 'https:' ? 'wss://' : 'ws://') +
    window.location.host +
    '/graphql/ws';

  function fetcherFor(key) {
    var authorization = key ? { Authorization: 'Bearer ' + key } : {};
    return GraphiQL.createFetcher({
      url: '/graphql',
      subscriptionUrl: wsUrl,
      headers: authorization,
      wsConnectionParams: key ? { authorization: 'Bearer ' + key } : {},
    });
  }

  function showStatus() {
    input.value = apiKey;
    if (apiKey) {
      status.textContent = 'Saved in this browser.';
      status.className = '';
    } else {
      status.textContent = 'No key yet: `waflow workspace create NAME` prints one.';
      status.className = 'waflow-missing';
    }
  }

  var root = ReactDOM.createRoot(container);
  var renders = 0;

  function render() {
    var props = {
      // A new key remounts GraphiQL: a fresh fetcher, and the schema fetched again with it.
      key: 'key-' + renders,
      fetcher: fetcherFor(apiKey),
      defaultQuery:
        '# Waflow GraphQL console: the API key above goes with every request.\n' +
        '# Ctrl-Enter runs the document; the book icon opens the schema.\n\n' +
        '{\n  workspace {\n    id\n    name\n  }\n}\n',
    };
    if (pendingQuery !== null) {
      props.query = pendingQuery;
      pendingQuery = null;
    }
    renders += 1;
    root.render(React.createElement(GraphiQL, props));
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    apiKey = input.value.trim();
    storeKey(apiKey);
    showStatus();
    render();
  });
  forget.addEventListener('click', function () {
    apiKey = '';
    storeKey('');
    showStatus();
    render();
  });

  // A link to the console followed from the console itself changes only the fragment.
  window.addEventListener('hashchange', function () {
    if (takeFragment()) {
      showStatus();
      render();
    }
  });

  showStatus();
  render();
})();

// stratus runtime bootstrap for the nodejs* Lambda runtimes.
//
// stratus starts this file as the runtime process of an execution environment:
//
//     node bootstrap.mjs
//
// with the working directory set to LAMBDA_TASK_ROOT and the environment of a
// Lambda execution environment (AWS_LAMBDA_RUNTIME_API, _HANDLER, ...). It loads
// the handler named by _HANDLER (CommonJS or ES module), then serves invocations
// from the Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) until the
// process is stopped. Behaviour (error payloads, log lines, the context object,
// callback and async handlers) follows AWS's managed Node.js runtime.
//
// This file is self-contained and uses only Node's built-in modules: stratus
// embeds it and may write it anywhere.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import { Writable } from 'node:stream';
import Module, { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const API_PREFIX = '/2018-06-01/runtime';

// ---------------------------------------------------------------------------
// Errors reported by the runtime itself (AWS's "Runtime.*" error types)
// ---------------------------------------------------------------------------

function runtimeErrorClass(name, init) {
  const cls = class extends Error {
    constructor(message, extra) {
      super(message);
      if (init) init(this, extra);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

const ImportModuleError = runtimeErrorClass('ImportModuleError');
const HandlerNotFound = runtimeErrorClass('HandlerNotFound');
const MalformedHandlerName = runtimeErrorClass('MalformedHandlerName');
const UserCodeSyntaxError = runtimeErrorClass('UserCodeSyntaxError');
const MalformedStreamingHandler = runtimeErrorClass('MalformedStreamingHandler');
const InvalidStreamingOperation = runtimeErrorClass('InvalidStreamingOperation');
const NodeJsExit = runtimeErrorClass('NodeJsExit');
const UnhandledPromiseRejection = runtimeErrorClass('UnhandledPromiseRejection', (err, extra) => {
  err.reason = extra?.reason;
  err.promise = extra?.promise;
});

const NODEJS_EXIT_MESSAGE =
  'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly ' +
  'caused by a Promise that was never settled. For more information, see ' +
  'https://nodejs.org/docs/latest/api/process.html#exit-codes';

function looksLikeError(obj) {
  return (
    obj &&
    typeof obj.name === 'string' && obj.name &&
    typeof obj.message === 'string' && obj.message &&
    typeof obj.stack === 'string' && obj.stack
  );
}

/** The error document posted to the Runtime API, in AWS's Node shape. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: String(error.stack).split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

/** Error with its non-enumerable fields exposed, for the "Invoke Error" log line. */
function withEnumerableFields(value) {
  if (value instanceof Error) {
    const out = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
    return out;
  }
  return value;
}

function formatErrorForLog(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableFields(v));
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

// ---------------------------------------------------------------------------
// Logging: console.* patched to write one record per stdout line
// ---------------------------------------------------------------------------

const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');
const LEVELS = {
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
};
const JSON_FORMAT = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';

function writeLine(line) {
  // A newline inside one record is written as \r, as AWS's runtime does when it
  // logs to stdout: every stdout line is exactly one log record.
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
}

function formatJsonRecord(level, message, params) {
  const record = {
    timestamp: new Date().toISOString(),
    level: level.name,
    requestId: globalThis[REQUEST_ID],
  };
  const tenantId = globalThis[TENANT_ID];
  if (tenantId !== undefined && tenantId !== null) record.tenantId = tenantId;
  if (params.length === 0) {
    record.message = message;
    try {
      return JSON.stringify(record, jsonErrorReplacer);
    } catch (_) {
      record.message = util.format(record.message);
      return JSON.stringify(record);
    }
  }
  const all = [message, ...params];
  record.message = util.format(...all);
  for (const p of all) {
    if (p instanceof Error) {
      record.errorType = p?.constructor?.name ?? 'UnknownError';
      record.errorMessage = p.message;
      record.stackTrace = typeof p.stack === 'string' ? p.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(record);
}

function logRecord(level, message, ...params) {
  if (JSON_FORMAT) {
    writeLine(formatJsonRecord(level, message, params));
  } else {
    const requestId = globalThis[REQUEST_ID];
    writeLine(`${new Date().toISOString()}\t${requestId}\t${level.name}\t${util.format(message, ...params)}`);
  }
}

function patchConsole() {
  const nop = () => {};
  const threshold = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? LEVELS.TRACE;
  const at = (level) =>
    level.priority >= threshold.priority ? (msg, ...params) => logRecord(level, msg, ...params) : nop;
  console.trace = at(LEVELS.TRACE);
  console.debug = at(LEVELS.DEBUG);
  console.info = at(LEVELS.INFO);
  console.log = console.info;
  console.warn = at(LEVELS.WARN);
  console.error = at(LEVELS.ERROR);
  console.fatal = (msg, ...params) => logRecord(LEVELS.FATAL, msg, ...params);
}

/** Log an error the way AWS's runtime does ("Invoke Error", "Uncaught Exception", ...). */
function logError(label, err) {
  if (JSON_FORMAT) console.error(intoError(err));
  else console.error(label, formatErrorForLog(intoError(err)));
}

function runtimeNotice(message) {
  process.stderr.write(String(message).replace(/\n/g, '\r') + '\n');
}

// ---------------------------------------------------------------------------
// Runtime API client
// ---------------------------------------------------------------------------

class RuntimeApiClient {
  constructor(address) {
    const idx = address.lastIndexOf(':');
    this.host = idx > 0 ? address.slice(0, idx).replace(/^\[|\]$/g, '') : address;
    this.port = idx > 0 ? parseInt(address.slice(idx + 1), 10) : 80;
    // Idle kept-alive sockets are unref'd by the agent, so they never keep the
    // event loop alive (callbackWaitsForEmptyEventLoop relies on that).
    this.agent = new http.Agent({ keepAlive: true });
  }

  request(method, urlPath, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path: API_PREFIX + urlPath,
          agent: this.agent,
          headers: body === undefined ? headers : { ...headers, 'Content-Length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async nextInvocation() {
    const res = await this.request('GET', '/invocation/next');
    if (res.status !== 200) {
      throw new Error(`GET /invocation/next returned HTTP ${res.status}: ${res.body.toString('utf8', 0, 500)}`);
    }
    return { bodyJson: res.body.toString('utf8'), headers: res.headers };
  }

  async post(urlPath, body, headers) {
    const res = await this.request('POST', urlPath, body, headers);
    if (res.status < 200 || res.status >= 300) {
      let message = res.body.toString('utf8');
      try {
        const doc = JSON.parse(message);
        message = `${doc.errorType ?? ''}: ${doc.errorMessage ?? ''}`;
      } catch (_) {
        /* keep the raw body */
      }
      runtimeNotice(`[ERROR] Runtime API rejected POST ${urlPath} (HTTP ${res.status}): ${message}`);
    }
    return res.status;
  }

  /** Post a result; throws synchronously if the result cannot be serialised. */
  postInvocationResponse(result, id, callback) {
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (_) {
      throw new Error('Unable to stringify response body');
    }
    if (body === undefined) body = 'null'; // e.g. a function returned as the result
    this.finish(this.post(`/invocation/${id}/response`, body, { 'Content-Type': 'application/json' }), callback);
  }

  postInvocationError(error, id, callback) {
    const doc = toRapidResponse(error);
    this.finish(
      this.post(`/invocation/${id}/error`, safeStringify(doc), {
        'Content-Type': 'application/json',
        'Lambda-Runtime-Function-Error-Type': headerSafe(doc.errorType),
      }),
      callback,
    );
  }

  postInitError(error, callback) {
    const doc = toRapidResponse(error);
    this.finish(
      this.post('/init/error', safeStringify(doc), {
        'Content-Type': 'application/json',
        'Lambda-Runtime-Function-Error-Type': headerSafe(doc.errorType),
      }),
      callback,
    );
  }

  finish(promise, callback) {
    promise.then(
      () => callback && setImmediate(callback),
      (err) => {
        runtimeNotice(`[ERROR] Runtime API unreachable: ${err && err.message}`);
        process.exit(1);
      },
    );
  }
}

function safeStringify(doc) {
  try {
    return JSON.stringify(doc);
  } catch (_) {
    return JSON.stringify({ errorType: String(doc.errorType), errorMessage: String(doc.errorMessage), trace: [] });
  }
}

function headerSafe(value) {
  return String(value ?? '').replace(/[^\t\x20-\x7e]/g, '?');
}

// ---------------------------------------------------------------------------
// Module resolution: layers and the SDK that stratus provides
// ---------------------------------------------------------------------------

function existingDir(p) {
  try {
    return fs.statSync(p).isDirectory();
  } catch (_) {
    return false;
  }
}

/** node_modules folders searched after the function's own ones, in AWS's order. */
function fallbackModuleDirs(taskRoot) {
  const opt = process.env.STRATUS_OPT_DIR || '/opt';
  const major = process.versions.node.split('.')[0];
  const dirs = [path.join(opt, 'nodejs', `node${major}`, 'node_modules'), path.join(opt, 'nodejs', 'node_modules')];
  const sdk = process.env.STRATUS_SDK_PATH;
  if (sdk) dirs.push(sdk);
  return { dirs, all: [...dirs, taskRoot] };
}

function setupModuleResolution(taskRoot) {
  const { dirs, all } = fallbackModuleDirs(taskRoot);
  // CommonJS: NODE_PATH, as on AWS (existing entries keep their place before ours).
  const current = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  const nodePath = [...current, ...all.filter((d) => !current.includes(d))];
  process.env.NODE_PATH = nodePath.join(path.delimiter);
  if (typeof Module._initPaths === 'function') Module._initPaths();

  // ES modules ignore NODE_PATH. A resolve hook retries a bare specifier that
  // the default resolver could not find from each fallback folder in turn.
  const present = dirs.filter(existingDir);
  if (present.length === 0 || typeof Module.register !== 'function') return;
  const parents = present.map((d) => pathToFileURL(path.join(d, '__stratus_resolve__.mjs')).href);
  const hook = `
const parents = ${JSON.stringify(parents)};
const bare = (s) => !/^(\\.|\\/|#|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(s);
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (!err || err.code !== 'ERR_MODULE_NOT_FOUND' || !bare(specifier)) throw err;
    for (const parentURL of parents) {
      try {
        return await next(specifier, { ...context, parentURL });
      } catch (_) {}
    }
    throw err;
  }
}
`;
  try {
    Module.register('data:text/javascript,' + encodeURIComponent(hook));
  } catch (err) {
    runtimeNotice(`stratus: could not register the ES module resolve hook: ${err && err.message}`);
  }
}

// ---------------------------------------------------------------------------
// Handler loading (same search as AWS's runtime)
// ---------------------------------------------------------------------------

function packageTypeIsModule(folder) {
  // The nearest package.json decides; a node_modules folder stops the search.
  for (;;) {
    if (folder.endsWith(path.sep + 'node_modules')) return false;
    const pj = path.join(folder, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
        if (pkg) return pkg.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? await import(pathToFileURL(file).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = requireIfExists(base);
  if (extensionless) return extensionless;

  const isModule = packageTypeIsModule(path.dirname(base));
  if (!isModule) {
    const cjs = requireIfExists(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (isModule && (await importIfExists(base + '.js'))) ||
    (await importIfExists(base + '.mjs')) ||
    requireIfExists(base + '.cjs');
  if (loaded) return loaded;

  // Last resort, as on AWS: Node's own resolution (node_modules, NODE_PATH),
  // which also produces the MODULE_NOT_FOUND error reported to the user.
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(String(e));
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    throw e;
  }

  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------
// Response streaming (awslambda.streamifyResponse)
// ---------------------------------------------------------------------------

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';

class HttpResponseStream {
  static from(responseStream, prelude) {
    responseStream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    responseStream.write(JSON.stringify(prelude));
    responseStream.write(new Uint8Array(8)); // eight NUL bytes end the prelude
    return responseStream;
  }
}

function installAwsLambdaGlobal() {
  const off = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (off === '1' || off === 'true') return;
  globalThis.awslambda = {
    streamifyResponse(handler, options) {
      handler[HANDLER_STREAMING] = 'response';
      if (typeof options?.highWaterMark === 'number') handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark);
      return handler;
    },
    HttpResponseStream,
  };
}

/**
 * A Writable that streams the response to the Runtime API with chunked
 * encoding and `Lambda-Runtime-Function-Response-Mode: streaming`. The POST
 * starts on the first write (or at the end), so setContentType can be called
 * before any data.
 */
function createResponseStream(client, id, highWaterMark) {
  let contentType = 'application/octet-stream';
  let req;
  let settle;
  const done = new Promise((resolve) => (settle = resolve));
  const open = () => {
    if (req) return req;
    req = http.request(
      {
        host: client.host,
        port: client.port,
        method: 'POST',
        path: `${API_PREFIX}/invocation/${id}/response`,
        agent: client.agent,
        headers: {
          'Content-Type': contentType,
          'Lambda-Runtime-Function-Response-Mode': 'streaming',
          'Transfer-Encoding': 'chunked',
          Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => settle(res.statusCode));
      },
    );
    req.on('error', (err) => settle(err));
    return req;
  };
  const stream = new Writable({
    highWaterMark,
    write(chunk, _enc, cb) {
      open().write(chunk, cb);
    },
    final(cb) {
      open().end(cb);
    },
  });
  stream.setContentType = (ct) => {
    if (req) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    contentType = ct;
  };
  stream.fail = (err) => {
    // An error after the stream started goes in the trailers, as on AWS.
    const doc = toRapidResponse(err);
    const r = open();
    r.addTrailers({
      'Lambda-Runtime-Function-Error-Type': headerSafe(doc.errorType),
      'Lambda-Runtime-Function-Error-Body': Buffer.from(safeStringify(doc)).toString('base64'),
    });
    r.end();
  };
  stream.started = () => req !== undefined;
  stream.done = done;
  return stream;
}

// ---------------------------------------------------------------------------
// The invoke loop
// ---------------------------------------------------------------------------

const HEADER = {
  requestId: 'lambda-runtime-aws-request-id',
  deadline: 'lambda-runtime-deadline-ms',
  arn: 'lambda-runtime-invoked-function-arn',
  trace: 'lambda-runtime-trace-id',
  clientContext: 'lambda-runtime-client-context',
  cognito: 'lambda-runtime-cognito-identity',
  tenant: 'lambda-runtime-aws-tenant-id',
};

// The single 'beforeExit' action: what to do when the event loop runs dry.
let beforeExitAction = () => {};
const setBeforeExit = (fn) => (beforeExitAction = fn);
const resetBeforeExit = () => (beforeExitAction = () => {});

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/** The environment and header parts of the context object. */
function contextData(headers) {
  if (headers[HEADER.trace]) process.env._X_AMZN_TRACE_ID = headers[HEADER.trace];
  else delete process.env._X_AMZN_TRACE_ID;
  const deadline = Number(headers[HEADER.deadline]);
  return {
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers[HEADER.clientContext], 'ClientContext'),
    identity: parseJsonHeader(headers[HEADER.cognito], 'CognitoIdentity'),
    invokedFunctionArn: headers[HEADER.arn],
    awsRequestId: headers[HEADER.requestId],
    tenantId: headers[HEADER.tenant],
    getRemainingTimeInMillis() {
      return deadline - Date.now();
    },
  };
}

/**
 * The callback, and the part of the context holding succeed/fail/done and
 * callbackWaitsForEmptyEventLoop. Only the first completion counts.
 */
function buildCallbackContext(client, id, scheduleNext) {
  const postError = (err, next) => {
    logError('Invoke Error', err);
    client.postInvocationError(err, id, next);
  };
  let completed = false;
  const complete = (result, next) => {
    if (completed) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    completed = true;
    client.postInvocationResponse(result, id, next);
  };
  let waitForEmptyEventLoop = true;

  const callback = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else if (!waitForEmptyEventLoop) {
      complete(result, scheduleNext);
    } else {
      setBeforeExit(() => setImmediate(() => complete(result, scheduleNext)));
    }
  };
  const done = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) postError(err, scheduleNext);
    else complete(result, scheduleNext);
  };
  const succeed = (result) => done(null, result);
  const fail = (err) => (err === undefined || err === null ? done('handled') : done(err, null));

  let finished = false;
  const once = (fn) =>
    function (...args) {
      if (!finished) {
        fn(...args);
        finished = true;
      }
    };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once(succeed),
    fail: once(fail),
    done: once(done),
  };
  const markCompleted = () => {
    completed = true;
  };
  return [once(callback), context, markCompleted];
}

const isPromise = (obj) => obj && typeof obj.then === 'function';

class Runtime {
  constructor(client, handler, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.errorCallbacks = errorCallbacks;
    this.isAsync = handler?.constructor?.name === 'AsyncFunction';
    this.streaming = handler[HANDLER_STREAMING];
    if (this.streaming !== undefined && this.streaming !== null && this.streaming !== false && this.streaming !== 'response') {
      throw new MalformedStreamingHandler('Only response streaming is supported.');
    }
    const hwm = parseInt(handler[HANDLER_HIGHWATERMARK]);
    this.highWaterMark = Number.isNaN(hwm) ? undefined : hwm;
  }

  scheduleIteration() {
    setImmediate(() => {
      const once = this.streaming === 'response' ? this.handleOnceStreaming() : this.handleOnce();
      once.catch((err) => {
        console.log(`Unexpected Top Level Error: ${err.toString()}`);
        this.errorCallbacks.uncaughtException(err);
      });
    });
  }

  async next() {
    try {
      return await this.client.nextInvocation();
    } catch (err) {
      runtimeNotice(`[ERROR] Runtime API unreachable: ${err && err.message}`);
      process.exit(1);
    }
  }

  beginInvoke(headers) {
    const id = headers[HEADER.requestId];
    if (!id) throw new Error('invocation id is missing or invalid');
    globalThis[REQUEST_ID] = id;
    globalThis[TENANT_ID] = headers[HEADER.tenant];
    this.errorCallbacks.uncaughtException = (error) =>
      this.client.postInvocationError(error, id, () => process.exit(129));
    this.errorCallbacks.unhandledRejection = (error) =>
      this.client.postInvocationError(error, id, () => process.exit(128));
    return id;
  }

  async handleOnce() {
    const { bodyJson, headers } = await this.next();
    const id = this.beginInvoke(headers);
    const [callback, callbackContext, markCompleted] = buildCallbackContext(this.client, id, () =>
      this.scheduleIteration(),
    );
    try {
      // If the event loop drains before the handler reports anything: a callback
      // or sync handler succeeds with null, an async one fails (Runtime.NodeJsExit).
      setBeforeExit(() => {
        markCompleted();
        if (this.isAsync) {
          const err = new NodeJsExit(NODEJS_EXIT_MESSAGE);
          logError('Invoke Error', err);
          this.client.postInvocationError(err, id, () => this.scheduleIteration());
        } else {
          this.client.postInvocationResponse(null, id, () => this.scheduleIteration());
        }
      });
      const context = Object.assign(callbackContext, contextData(headers));
      const result = this.handler(JSON.parse(bodyJson), context, callback);
      if (isPromise(result)) {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  async handleOnceStreaming() {
    const { bodyJson, headers } = await this.next();
    const id = this.beginInvoke(headers);
    const scheduleNext = () => this.scheduleIteration();
    const stream = createResponseStream(this.client, id, this.highWaterMark);
    let failed = false;
    const fail = (err) => {
      if (failed) return;
      failed = true;
      resetBeforeExit();
      logError('Invoke Error', err);
      if (stream.started()) {
        stream.fail(err);
        stream.done.then(() => setImmediate(scheduleNext));
      } else {
        this.client.postInvocationError(err, id, scheduleNext);
      }
    };
    setBeforeExit(() => scheduleNext());
    try {
      const context = Object.assign({}, contextData(headers));
      const ret = this.handler(JSON.parse(bodyJson), stream, context);
      if (!isPromise(ret)) {
        fail(new Error('Streaming does not support non-async handlers.'));
        return;
      }
      const value = await ret;
      if (value !== undefined) console.warn('Streaming handlers ignore return values.');
      if (!stream.writableEnded) {
        fail(new Error('Response stream is not finished.'));
        return;
      }
      await stream.done;
      resetBeforeExit();
      scheduleNext();
    } catch (err) {
      fail(err);
    }
  }
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

async function main() {
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    runtimeNotice('AWS_LAMBDA_RUNTIME_API is not set');
    process.exit(2);
  }
  const client = new RuntimeApiClient(address);
  const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();

  // Until the first invoke, failures are init errors.
  const errorCallbacks = {
    uncaughtException: (error) => client.postInitError(error, () => process.exit(129)),
    unhandledRejection: (error) => client.postInitError(error, () => process.exit(128)),
  };
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason?.toString(), { reason, promise });
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  resetBeforeExit();
  process.on('beforeExit', () => beforeExitAction());

  setupModuleResolution(taskRoot);
  installAwsLambdaGlobal();

  let runtime;
  try {
    const handler = await loadHandler(taskRoot, process.env._HANDLER || '');
    runtime = new Runtime(client, handler, errorCallbacks);
  } catch (err) {
    logError('Uncaught Exception', err);
    errorCallbacks.uncaughtException(err);
    return;
  }
  runtime.scheduleIteration();
}

main();

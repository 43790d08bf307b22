// Node.js (CommonJS) test function for stratus's end-to-end tests.
//
//   index.handler   async handler; dispatches on event.action
//   index.callback  callback-style handler
//   index.thrower   async handler that always throws
//   index.counter   warm-reuse probe
'use strict';

const { randomUUID } = require('node:crypto');

const initPid = process.pid;
// Identifies this execution environment, whatever PID namespace it runs in.
const envId = randomUUID().replace(/-/g, '');
let count = 0;

exports.handler = async (event, context) => {
  const action = (event && event.action) || 'echo';
  switch (action) {
    case 'echo':
      return {
        event,
        context: {
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          invokedFunctionArn: context.invokedFunctionArn,
          memoryLimitInMB: context.memoryLimitInMB,
          awsRequestId: context.awsRequestId,
          logGroupName: context.logGroupName,
          logStreamName: context.logStreamName,
          remainingTimeInMillis: context.getRemainingTimeInMillis(),
          clientContext: context.clientContext || null,
        },
      };
    case 'log':
      console.log(event.message || 'hello from console.log');
      return { logged: true, awsRequestId: context.awsRequestId };
    case 'env':
      return {
        AWS_LAMBDA_FUNCTION_NAME: process.env.AWS_LAMBDA_FUNCTION_NAME || null,
        AWS_EXECUTION_ENV: process.env.AWS_EXECUTION_ENV || null,
        AWS_REGION: process.env.AWS_REGION || null,
        _HANDLER: process.env._HANDLER || null,
      };
    case 'sdk': {
      // As on AWS, the AWS SDK for JavaScript v3 is available without
      // packaging it; it reaches the platform through AWS_ENDPOINT_URL.
      const { LambdaClient, GetFunctionConfigurationCommand } = require('@aws-sdk/client-lambda');
      const client = new LambdaClient({});
      const conf = await client.send(
        new GetFunctionConfigurationCommand({ FunctionName: context.functionName }),
      );
      return { FunctionArn: conf.FunctionArn };
    }
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, (event.seconds || 5) * 1000));
      return { slept: event.seconds || 5 };
    default:
      throw new Error(`unknown action ${action}`);
  }
};

exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { style: 'callback', event, awsRequestId: context.awsRequestId }), 10);
};

class CustomError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CustomError';
  }
}

exports.thrower = async (event) => {
  throw new CustomError((event && event.message) || 'node went wrong');
};

exports.counter = async (event, context) => {
  count += 1;
  return { count, envId, pid: initPid, awsRequestId: context.awsRequestId };
};

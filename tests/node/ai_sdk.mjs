// The Vercel AI SDK against chatgate: `streamText` with one tool, run to the end of the tool loop.
//
//   node ai_sdk.mjs BASE_URL PROVIDER MODEL
//
// PROVIDER is `responses` (the OpenAI provider's default, the Responses API), `chat` (the
// OpenAI provider over Chat Completions) or `anthropic` (the Anthropic provider, the Messages
// API). Prints one JSON line: the streamed text, the cities the tool was called with, the number
// of steps and the finish reason.
import { streamText, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { z } from "zod";

const [base, provider, model] = process.argv.slice(2);
const openai = () => createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" });
const models = {
  responses: () => openai().responses(model),
  chat: () => openai().chat(model),
  anthropic: () => createAnthropic({ baseURL: `${base}/v1`, apiKey: "unused" })(model),
};

const cities = [];
const result = streamText({
  model: models[provider](),
  prompt: "sim:tool What is the weather in Paris?",
  tools: {
    weather: tool({
      description: "The weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        cities.push(city);
        return { city, forecast: "sunny" };
      },
    }),
  },
  stopWhen: stepCountIs(3),
});

let text = "";
for await (const part of result.textStream) text += part;
const steps = await result.steps;
console.log(JSON.stringify({ text, cities, steps: steps.length, finish: await result.finishReason }));

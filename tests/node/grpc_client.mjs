// @grpc/grpc-js loading proto/ directly: one unary and one streaming call.
// Usage: node grpc_client.mjs TARGET PROTO_ROOT MODEL. Prints one JSON object for the Python test to check.
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [target, protoRoot, model] = process.argv.slice(2);
const definition = protoLoader.loadSync("chatgate/v1/chat_service.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: true,
  oneofs: true,
});
const { chatgate } = grpc.loadPackageDefinition(definition);
const client = new chatgate.v1.ChatCompletionService(target, grpc.credentials.createInsecure());
const request = {
  model,
  messages: [{ role: "ROLE_USER", content: [{ text: "Hello from grpc-js" }] }],
  stream_options: { include_usage: true },
};

const unary = await new Promise((resolve, reject) =>
  client.CreateChatCompletion(request, { deadline: Date.now() + 10000 }, (error, reply) => (error ? reject(error) : resolve(reply))),
);

const chunks = await new Promise((resolve, reject) => {
  const received = [];
  const call = client.StreamChatCompletion(request, { deadline: Date.now() + 10000 });
  call.on("data", (chunk) => received.push(chunk));
  call.on("error", reject);
  call.on("end", () => resolve(received));
});

const models = await new Promise((resolve, reject) =>
  client.ListModels({}, (error, reply) => (error ? reject(error) : resolve(reply))),
);

let streamed = "";
let finish = null;
for (const chunk of chunks) {
  for (const choice of chunk.choices) {
    streamed += choice.delta.content ?? "";
    if (choice.finish_reason !== "FINISH_REASON_UNSPECIFIED") finish = choice.finish_reason;
  }
}
console.log(JSON.stringify({
  unary_text: unary.choices[0].message.content.map((p) => p.text).join(""),
  unary_finish: unary.choices[0].finish_reason,
  streamed,
  finish,
  last_usage: chunks[chunks.length - 1].usage,
  first_role: chunks[0].choices[0].delta.role,
  models: models.models.map((m) => m.id),
}));
client.close();

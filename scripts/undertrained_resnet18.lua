-- An under-trained ResNet-18 for checking quantization defaults on a model
-- less converged than the shipped one: the resnet18 recipe of
-- scripts/train_baselines.lua (seed, SGD + Nesterov, cosine, crop + flip)
-- stopped after a few epochs. Writes out/resnet18_<N>ep.qlm (not shipped).
--   ./qlab --threads 1 --script scripts/undertrained_resnet18.lua [--epochs 2]
local qlab = require "qlab"
local epochs = 2
for i = 1, #arg do if arg[i] == "--epochs" then epochs = assert(tonumber(arg[i + 1]), "--epochs N") end end
qlab.seed(2026)
local train = qlab.data.fashion_mnist{split = "train"}
local val = qlab.data.fashion_mnist{split = "test"}:loader{batch = 500}
local model = qlab.models.resnet18()
os.execute("mkdir -p out")
local path = string.format("out/resnet18_%dep.qlm", epochs)
qlab.train(model, train:loader{batch = 128, shuffle = true, seed = 1, flip = true, crop_pad = 2},
           {epochs = epochs, optimizer = "sgd", lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4,
            schedule = "cosine", warmup = 0.5, checkpoint = path .. ".ckpt", resume = true})
local r = qlab.evaluate(model, val)
model:save(path)
os.remove(path .. ".ckpt")
print(string.format("resnet18 after %d epochs: top-1 %.2f %% on 10,000 test images -> %s", epochs, r.top1, path))

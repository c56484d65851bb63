using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Cases;

/// <summary>Small models for the case catalogue.</summary>
public static class CaseModels
{
    /// <summary>
    /// Builds <paramref name="body"/> with seed <paramref name="seed"/> and, when <paramref name="classes"/> is set,
    /// appends Flatten and a Linear classifier sized from the body's output on <paramref name="inputShape"/>. Norm
    /// layers get random affine values (weight 1 + 0.2 z, bias 0.2 z): the defaults 1 and 0 would hide a rule that
    /// confuses or drops them (<see cref="RandomizeNormAffines"/>).
    /// </summary>
    public static Module<Tensor, Tensor> Build(long seed, Func<Module<Tensor, Tensor>[]> body, long[] inputShape,
        long? classes = null,
        ScalarType inputType = ScalarType.Float32) =>
        Seeded.Build(seed, () =>
        {
            var layers = body().ToList();
            if (classes is { } c)
            {
                long features;
                using (no_grad())
                using (var scope = NewDisposeScope())
                {
                    var probe = zeros([1, .. inputShape], dtype: inputType);
                    foreach (var layer in layers) probe = layer.call(probe);
                    features = probe.shape[1..].Aggregate(1L, (a, b) => a * b);
                }
                layers.Add(Flatten());
                layers.Add(Linear(features, c));
            }
            var model = Sequential(layers.Select((l, i) => ($"{i}", l)).ToArray());
            RandomizeNormAffines(model);
            model.eval();
            return (Module<Tensor, Tensor>)model;
        });

    /// <summary>
    /// Gives norm layers' affine parameters, BatchNorm's running statistics and PReLU's slopes random values around
    /// PyTorch's defaults.
    /// </summary>
    public static void RandomizeNormAffines(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var named in ModelInspection.AllModules(model))
        {
            (Tensor? weight, Tensor? bias) = named.Module switch
            {
                GroupNorm g => (g.weight, g.bias),
                LayerNorm l => (l.weight, l.bias),
                InstanceNorm i => (i.weight, i.bias),
                BatchNorm b => (b.weight, b.bias),
                _ => (null, null),
            };
            weight?.copy_(1 + 0.2 * randn_like(weight));
            bias?.copy_(0.2 * randn_like(bias));
            switch (named.Module)
            {
                // Running statistics away from 0 and 1, so that a rule ignoring them fails.
                case BatchNorm { running_mean: { } mean, running_var: { } variance }:
                    mean.copy_(0.3 * randn_like(mean));
                    variance.copy_(0.5 + rand_like(variance));
                    break;
                // Distinct slopes around PReLU's 0.25, so that a rule confusing channels fails.
                case PReLU prelu:
                    prelu.weight.copy_(0.25 + 0.1 * randn_like(prelu.weight));
                    break;
            }
        }
    }
}

/// <summary>One Linear layer used twice in a forward (weight sharing): <c>y = L(relu(L(x)))</c>, then a head.</summary>
public sealed class SharedTwice : Module<Tensor, Tensor>
{
    private readonly Linear _shared;
    private readonly Linear _head;

    /// <summary>Builds the module with freshly initialised parameters.</summary>
    public SharedTwice(long width, long classes) : base(nameof(SharedTwice))
    {
        _shared = Linear(width, width);
        _head = Linear(width, classes);
        register_module("shared", _shared);
        register_module("head", _head);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(_head.call(_shared.call(functional.relu(_shared.call(input)))));
    }
}

/// <summary>A model with a trainable branch that never reaches the output: its gradients are zero.</summary>
public sealed class UnusedBranch : Module<Tensor, Tensor>
{
    private readonly Linear _used;
    private readonly Linear _unused;

    /// <summary>Builds the module with freshly initialised parameters.</summary>
    public UnusedBranch(long width, long classes) : base(nameof(UnusedBranch))
    {
        _used = Linear(width, classes);
        _unused = Linear(width, classes);
        register_module("used", _used);
        register_module("unused", _unused);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => _used.call(input);
}

/// <summary>Nested containers: Sequential(Sequential(Linear, ReLU), Sequential(Sequential(Linear))).</summary>
public static class Nested
{
    /// <summary>Builds the module with freshly initialised parameters.</summary>
    public static Module<Tensor, Tensor> Create(long width, long classes) =>
        Sequential(("outer", Sequential(("0", Linear(width, width)), ("1", ReLU()))),
                   ("deep", Sequential(("inner", Sequential(("linear", Linear(width, classes)))))));
}

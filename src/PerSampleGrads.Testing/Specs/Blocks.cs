using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Specs;

/// <summary><c>x + body(x)</c>.</summary>
public sealed class ResidualBlock : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _body;

    /// <summary>Wraps <paramref name="body"/>, registered as <c>body</c>.</summary>
    public ResidualBlock(nn.Module<Tensor, Tensor> body) : base(nameof(ResidualBlock))
    {
        _body = body;
        register_module("body", _body);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(input + _body.call(input));
    }
}

/// <summary>One module called twice in a forward, <c>m(tanh(m(x)))</c>: weight sharing.</summary>
public sealed class AppliedTwice : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _shared;

    /// <summary>Wraps <paramref name="shared"/>, registered as <c>shared</c>.</summary>
    public AppliedTwice(nn.Module<Tensor, Tensor> shared) : base(nameof(AppliedTwice))
    {
        _shared = shared;
        register_module("shared", _shared);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(_shared.call(_shared.call(input).tanh()));
    }
}

/// <summary>Mean over the token dimension: <c>[N, T, D]</c> to <c>[N, D]</c>.</summary>
public sealed class MeanOverTokens : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the parameterless module.</summary>
    public MeanOverTokens() : base(nameof(MeanOverTokens)) { }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => input.mean([1L]);
}

using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// Model patterns from everyday code that a per-sample method must either get right or refuse: weight tying,
/// one module under two parents, sequence-first layers, inputs shared by every sample, children called without
/// hooks, batch statistics outside BatchNorm.
/// </summary>
public static class PatternModels
{
    /// <summary>A language-model head tied to the embedding: logits = mean_t(tanh(E[ids] W1)) E^T.</summary>
    public static Module<Tensor, Tensor> TiedEmbeddingClassifier(int vocabulary = 7, int width = 4) =>
        Seeded.Build(11, () => (Module<Tensor, Tensor>)new TiedLanguageModel(vocabulary, width));

    /// <summary>One Linear instance registered in two Sequential blocks, so it runs twice.</summary>
    public static Module<Tensor, Tensor> ModuleUnderTwoParents()
    {
        return Seeded.Build(12, () =>
        {
            var shared = Linear(5, 5);
            return (Module<Tensor, Tensor>)Sequential(("first", Sequential(("shared", shared), ("act", Tanh()))),
                ("second", Sequential(("shared", shared), ("act", Tanh()))), ("head", Linear(5, 3)));
        });
    }

    /// <summary>Input [N, T, D]; a Linear and a LayerNorm applied sequence-first ([T, N, D]), then pooled.</summary>
    public static Module<Tensor, Tensor> SequenceFirst(int width = 4, int classes = 3) =>
        Seeded.Build(13, () => (Module<Tensor, Tensor>)new SequenceFirstModel(width, classes));

    /// <summary>Token ids [N, T] plus learned positions: an Embedding called on ids shared by every sample
    /// (<c>[1, T]</c> when <paramref name="unitBatch"/>, else <c>[T]</c>).</summary>
    public static Module<Tensor, Tensor> PositionEmbeddings(int vocabulary, int length, bool unitBatch) =>
        Seeded.Build(14, () => (Module<Tensor, Tensor>)new PositionModel(vocabulary, length, 4, 3, unitBatch));

    /// <summary>A parent that calls a child through forward() (no hooks) when <paramref name="always"/>, or once
    /// through call() and once through forward().</summary>
    public static Module<Tensor, Tensor> ChildCalledWithForward(bool always, bool bias = true) =>
        Seeded.Build(15, () => (Module<Tensor, Tensor>)new ForwardCaller(always, bias));

    /// <summary>Activations centred over the batch between two Linear layers (a batch statistic outside
    /// BatchNorm); <paramref name="afterLastLayer"/> centres the output instead.</summary>
    public static Module<Tensor, Tensor> BatchCentring(bool afterLastLayer) =>
        Seeded.Build(16, () => (Module<Tensor, Tensor>)new CentringModel(afterLastLayer));

    private sealed class TiedLanguageModel : Module<Tensor, Tensor>
    {
        private readonly Embedding embedding;
        private readonly Linear mix;
        private readonly Linear head;

        public TiedLanguageModel(int vocabulary, int width) : base(nameof(TiedLanguageModel))
        {
            embedding = Embedding(vocabulary, width);
            mix = Linear(width, width);
            head = Linear(width, vocabulary, hasBias: false);
            head.weight = embedding.weight!;
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids) => head.call(mix.call(embedding.call(ids)).tanh().mean([1]));
    }

    private sealed class SequenceFirstModel : Module<Tensor, Tensor>
    {
        private readonly Linear project;
        private readonly LayerNorm norm;
        private readonly Linear head;

        public SequenceFirstModel(int width, int classes) : base(nameof(SequenceFirstModel))
        {
            project = Linear(width, width);
            norm = LayerNorm(width);
            head = Linear(width, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var sequenceFirst = x.transpose(0, 1);
            var hidden = norm.call(project.call(sequenceFirst).tanh());
            return head.call(hidden.mean([0]));
        }
    }

    private sealed class PositionModel : Module<Tensor, Tensor>
    {
        private readonly Embedding tokens;
        private readonly Embedding positions;
        private readonly Linear head;
        private readonly long length;
        private readonly bool unitBatch;

        public PositionModel(int vocabulary, int length, int width, int classes, bool unitBatch)
            : base(nameof(PositionModel))
        {
            tokens = Embedding(vocabulary, width);
            positions = Embedding(length, width);
            head = Linear(width, classes);
            this.length = length;
            this.unitBatch = unitBatch;
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            var places = arange(length, device: ids.device);
            if (unitBatch) places = places.unsqueeze(0);
            return head.call((tokens.call(ids) + positions.call(places)).tanh().mean([1]));
        }
    }

    private sealed class ForwardCaller : Module<Tensor, Tensor>
    {
        private readonly Linear first;
        private readonly Linear second;
        private readonly bool always;

        public ForwardCaller(bool always, bool bias) : base(nameof(ForwardCaller))
        {
            first = Linear(4, 4, hasBias: bias);
            second = Linear(4, 3);
            this.always = always;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var hidden = always ? first.forward(x).tanh() : (first.call(x) + first.forward(x)).tanh();
            return second.call(hidden);
        }
    }

    private sealed class CentringModel : Module<Tensor, Tensor>
    {
        private readonly Linear first;
        private readonly Linear second;
        private readonly bool afterLastLayer;

        public CentringModel(bool afterLastLayer) : base(nameof(CentringModel))
        {
            first = Linear(4, 4);
            second = Linear(4, 3);
            this.afterLastLayer = afterLastLayer;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            if (afterLastLayer)
            {
                var logits = second.call(first.call(x).tanh());
                return logits - logits.mean([0], keepdim: true);
            }
            var hidden = first.call(x).tanh();
            return second.call(hidden - hidden.mean([0], keepdim: true));
        }
    }
}

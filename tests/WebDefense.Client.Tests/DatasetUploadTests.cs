using System.Net;
using Bunit;
using Microsoft.AspNetCore.Components.Forms;
using WebDefense.Client.Components;

namespace WebDefense.Client.Tests;

public sealed class DatasetUploadTests : DashboardTest
{
    [Fact]
    public void A_class_folder_archive_shows_which_folder_became_which_label()
    {
        // The server's answer to uploading the CIFAR-10 test .tar.gz of shared/data (class folders in sorted order).
        Api.Json("POST", "/api/datasets", """
            {"id":"3f1c2b9e-7a44-4d1e-9a53-0c6a1f2b8e77","name":"cifar10-jpeg-test.tar.gz","kind":"clean","fileName":"cifar10-jpeg-test.tar.gz","count":10000,
             "shape":[3,32,32],"classes":[0,1,2,3,4,5,6,7,8,9],"sha256":"2f78efc3","sizeBytes":3241094,"createdAt":"2026-12-07T14:00:00+00:00",
             "classNames":["airplane","automobile","bird","cat","deer","dog","frog","horse","ship","truck"]}
            """, HttpStatusCode.Created);
        var form = Render<DatasetUploadForm>(p => p.Add(c => c.Kind, "clean"));
        form.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromBinary([1, 2, 3], "cifar10-jpeg-test.tar.gz"));

        form.WaitForAssertion(() => Assert.Equal(
            "Labels from the archive's folders: 0 = airplane, 1 = automobile, 2 = bird, 3 = cat, 4 = deer, 5 = dog, 6 = frog, 7 = horse, 8 = ship, 9 = truck",
            form.Find("[data-testid=class-names-clean]").TextContent.Trim()));
    }
}

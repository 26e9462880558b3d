using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WebDefense.Server.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class RunLeases : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_TrajectoryPoints_RunId_Index",
                table: "TrajectoryPoints");

            migrationBuilder.AddColumn<int>(
                name: "Attempt",
                table: "TrajectoryPoints",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<int>(
                name: "Attempt",
                table: "Runs",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<long>(
                name: "LeaseExpiresAt",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Worker",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_TrajectoryPoints_RunId_Attempt_Index",
                table: "TrajectoryPoints",
                columns: new[] { "RunId", "Attempt", "Index" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_TrajectoryPoints_RunId_Attempt_Index",
                table: "TrajectoryPoints");

            migrationBuilder.DropColumn(
                name: "Attempt",
                table: "TrajectoryPoints");

            migrationBuilder.DropColumn(
                name: "Attempt",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "LeaseExpiresAt",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Worker",
                table: "Runs");

            migrationBuilder.CreateIndex(
                name: "IX_TrajectoryPoints_RunId_Index",
                table: "TrajectoryPoints",
                columns: new[] { "RunId", "Index" });
        }
    }
}
